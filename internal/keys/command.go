package keys

import (
	"bufio"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/trust"
)

// Limits on the files read.
const (
	maxKeyFile      = 64 << 10
	maxUnsignedFile = 64 << 20 // targets metadata grows with every release
	minPassphrase   = 8
)

// Command returns `steward keys`. It never contacts a server: run it on the
// offline machine that holds the keys.
func Command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Make and use offline TUF signing keys (root and targets); never contacts a server",
		Long: `keys makes the root and targets keys of a TUF repository and signs with
them, on a machine that stays offline. The server never sees these keys:
'steward ctl tuf init' and 'rotate-root' take their public halves,
'steward ctl tuf unsigned' exports what awaits signatures, 'keys sign'
signs it here, and 'steward ctl tuf add-signature' takes the signature back.
See docs/keys.md for the whole ceremony.

Private keys are PKCS#8 PEM files (mode 0600), encrypted with a passphrase
when one is given. The passphrase is read from a file (--passphrase-file)
or an environment variable (--passphrase-env NAME), never from a flag,
which would show in the process list and shell history.`,
		// Flags come from the command line only: steward's root fills
		// flags from STEWARD_* variables and --config, which must not
		// change which key is written or used.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
	}
	cmd.AddCommand(generateCommand(), publicCommand(), signCommand())
	return cmd
}

// passphraseFlags name where a passphrase comes from.
type passphraseFlags struct{ file, env string }

func (p *passphraseFlags) add(cmd *cobra.Command, purpose string) {
	cmd.Flags().StringVar(&p.file, "passphrase-file", "", "read the passphrase that "+purpose+" from this file (its first line)")
	cmd.Flags().StringVar(&p.env, "passphrase-env", "", "read the passphrase that "+purpose+" from this environment variable")
	cmd.MarkFlagsMutuallyExclusive("passphrase-file", "passphrase-env")
}

func (p *passphraseFlags) given() bool { return p.file != "" || p.env != "" }

// get reads the passphrase, or explains how to give one.
func (p *passphraseFlags) get() (string, error) {
	var pass string
	switch {
	case p.file != "":
		b, err := os.ReadFile(p.file)
		if err != nil {
			return "", fmt.Errorf("--passphrase-file: %w", err)
		}
		pass, _, _ = strings.Cut(string(b), "\n")
		pass = strings.TrimSuffix(pass, "\r")
	case p.env != "":
		pass = os.Getenv(p.env)
		if pass == "" {
			return "", fmt.Errorf("--passphrase-env: the environment variable %s is not set or empty", p.env)
		}
	default:
		return "", errors.New("the key is encrypted: give its passphrase with --passphrase-file FILE or --passphrase-env NAME")
	}
	if pass == "" {
		return "", errors.New("the passphrase is empty")
	}
	return pass, nil
}

func generateCommand() *cobra.Command {
	var (
		role, out, alg string
		force          bool
		pf             passphraseFlags
	)
	cmd := &cobra.Command{
		Use:   "generate --role root|targets --out FILE [--type ed25519|ecdsa-p256] [--passphrase-file F | --passphrase-env NAME]",
		Short: "Make a new root or targets key: FILE (private, mode 0600) and FILE.pub (public)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if role != string(trust.RoleRoot) && role != string(trust.RoleTargets) {
				return fmt.Errorf("--role %q: give root or targets (the server keeps snapshot and timestamp keys)", role)
			}
			pass := ""
			if pf.given() {
				var err error
				if pass, err = pf.get(); err != nil {
					return err
				}
				if len([]rune(pass)) < minPassphrase {
					return fmt.Errorf("the passphrase has fewer than %d characters", minPassphrase)
				}
			}
			priv, err := Generate(alg)
			if err != nil {
				return fmt.Errorf("--type: %w", err)
			}
			id, err := KeyID(priv.Public())
			if err != nil {
				return err
			}
			privPEM, err := EncodePrivate(priv, pass)
			if err != nil {
				return err
			}
			pubPEM, err := EncodePublic(priv.Public())
			if err != nil {
				return err
			}
			pubFile := out + ".pub"
			if err := writeNew(out, privPEM, 0o600, force); err != nil {
				return err
			}
			if err := writeNew(pubFile, pubPEM, 0o644, force); err != nil {
				_ = os.Remove(out)
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "generated a %s key (%s)\n", role, alg)
			fmt.Fprintf(w, "key id:      %s\n", id)
			if pass != "" {
				fmt.Fprintf(w, "private key: %s (mode 0600, encrypted with the passphrase)\n", out)
			} else {
				fmt.Fprintf(w, "private key: %s (mode 0600, NOT encrypted: keep it on encrypted, offline storage)\n", out)
			}
			fmt.Fprintf(w, "public key:  %s\n%s", pubFile, pubPEM)
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "the role the key will sign for: root or targets")
	cmd.Flags().StringVar(&out, "out", "", "the private key file to write; the public key goes to FILE.pub")
	cmd.Flags().StringVar(&alg, "type", Ed25519, "key type: ed25519 or ecdsa-p256")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing files")
	pf.add(cmd, "encrypts the key")
	_ = cmd.MarkFlagRequired("role")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func publicCommand() *cobra.Command {
	var pf passphraseFlags
	cmd := &cobra.Command{
		Use:   "public FILE",
		Short: "Print the TUF key id and the PEM public key of a key file (private or public)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readLimited(args[0], maxKeyFile)
			if err != nil {
				return err
			}
			var pub crypto.PublicKey
			if block, _ := pem.Decode(data); block != nil && block.Type == pemPublic {
				if _, err := trust.PublicKeyFromPEM(trust.RoleRoot, data); err != nil {
					return fmt.Errorf("%s: %v", args[0], err)
				}
				if pub, err = x509.ParsePKIXPublicKey(block.Bytes); err != nil {
					return fmt.Errorf("%s: %v", args[0], err)
				}
			} else {
				priv, err := DecodePrivate(data, func() (string, error) {
					if !pf.given() {
						return "", fmt.Errorf("the key is encrypted: give --passphrase-file or --passphrase-env, or read %s.pub", args[0])
					}
					return pf.get()
				})
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				pub = priv.Public()
			}
			id, err := KeyID(pub)
			if err != nil {
				return err
			}
			pubPEM, err := EncodePublic(pub)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key id: %s\ntype:   %s\n%s", id, Algorithm(pub), pubPEM)
			return nil
		},
	}
	pf.add(cmd, "decrypts the key")
	return cmd
}

func signCommand() *cobra.Command {
	var (
		keyFile, in, out string
		yes              bool
		pf               passphraseFlags
	)
	cmd := &cobra.Command{
		Use:   "sign --key FILE --in UNSIGNED --out SIGFILE [--yes]",
		Short: "Sign what 'steward ctl tuf unsigned' exported, after showing what it is",
		Long: `Sign an unsigned root or targets version exported by 'steward ctl tuf
unsigned'. keys sign recomputes the canonical bytes from the file and checks
them against the SHA-256 the server named, checks the role, version and
expiry, and that this key is one whose signature counts. It then shows the
version, expiry and keys (root) or every target (targets) and asks before
signing; --yes skips the question. The signature file goes to
'steward ctl tuf add-signature'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			data, err := readLimited(in, maxUnsignedFile)
			if err != nil {
				return err
			}
			doc, err := ReadUnsigned(data, now)
			if err != nil {
				return fmt.Errorf("%s: %w", in, err)
			}
			keyData, err := readLimited(keyFile, maxKeyFile)
			if err != nil {
				return err
			}
			priv, err := DecodePrivate(keyData, pf.get)
			if err != nil {
				return fmt.Errorf("--key %s: %w", keyFile, err)
			}
			id, err := KeyID(priv.Public())
			if err != nil {
				return err
			}
			if err := doc.MaySign(id); err != nil {
				return err
			}
			errOut := cmd.ErrOrStderr()
			doc.Describe(errOut, id, now)
			if !yes {
				fmt.Fprintf(errOut, "Sign %s version %d with key %s? Type yes to sign: ", doc.Role, doc.Version, id[:12])
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				if a := strings.ToLower(strings.TrimSpace(line)); a != "yes" && a != "y" {
					return errors.New("not signed")
				}
			}
			sig, err := doc.Sign(priv)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(sig, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %s version %d with key %s: wrote %s\nnext: steward ctl tuf add-signature %s %s\n",
				doc.Role, doc.Version, id, out, doc.Role, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "the private key file")
	cmd.Flags().StringVar(&in, "in", "", "the unsigned metadata file ('steward ctl tuf unsigned ROLE --out FILE')")
	cmd.Flags().StringVar(&out, "out", "", "where to write the signature")
	cmd.Flags().BoolVar(&yes, "yes", false, "sign without asking (after checking and showing the file)")
	pf.add(cmd, "decrypts the key")
	for _, n := range []string{"key", "in", "out"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: not the file it should be", path, limit)
	}
	return b, nil
}

// writeNew writes a file that must not exist yet, unless force: an
// existing key is never overwritten by accident.
func writeNew(path string, data []byte, mode os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: keys are never overwritten; choose another name or give --force", path)
	}
	if err != nil {
		return err
	}
	// An existing file opened with --force keeps its mode: set it.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

package ctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/trust"
)

// maxSignatureFile bounds a signature file: a few hundred bytes in practice.
const maxSignatureFile = 64 << 10

func tufCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tuf",
		Short: "Key ceremonies of the organization's TUF repository: offline root and targets keys, signatures, root rotation",
		Long: `tuf manages the keys of the organization's TUF image repository, the
update metadata devices verify. Root and targets keys can be kept offline:
'tuf init' takes their public keys, 'tuf unsigned' exports what awaits
signatures, 'steward keys sign' signs it on the offline machine, and
'tuf add-signature' brings each signature back; a version is published once
its threshold is met. See docs/keys.md for the whole ceremony.

Without 'tuf init', the first release creates a repository with every key
online (the embedded default): whoever controls the server can then sign
updates. 'tuf status' says which keys are online.`,
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "Show each role's keys (online or offline), thresholds, versions, expiries and missing signatures",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/tuf")
			if err != nil {
				return err
			}
			var st trust.RepoStatus
			raw, err := s.get(s.ctx, path, nil, &st)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			return printTUFStatus(s.out, st)
		}),
	}

	var (
		rootKeys, targetsKeys []string
		rootTh, targetsTh     int
	)
	initCmd := &cobra.Command{
		Use:   "init --root-key PUB --root-key PUB ... --root-threshold N --targets-key PUB ... [--targets-threshold N]",
		Short: "Create the repository with offline root and targets keys (public key files only)",
		Long: `Create the organization's TUF repository with root and targets keys that
stay offline: give the public key files 'steward keys generate' wrote
(FILE.pub). The server generates and keeps only the snapshot and timestamp
keys, which it must re-sign unattended.

Root version 1 and targets version 1 then await signatures: export them
with 'tuf unsigned', sign with 'steward keys sign' where the keys are, and
bring the signatures back with 'tuf add-signature'. Run this before the
first release: a repository that published anything cannot be initialized
again (use 'tuf rotate-root').`,
		Args: cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			req := trust.InitRequest{RootThreshold: rootTh, TargetsThreshold: targetsTh}
			var err error
			if req.RootKeys, err = readPublicKeys("--root-key", trust.RoleRoot, rootKeys); err != nil {
				return err
			}
			if req.TargetsKeys, err = readPublicKeys("--targets-key", trust.RoleTargets, targetsKeys); err != nil {
				return err
			}
			path, err := s.orgPath("/tuf")
			if err != nil {
				return err
			}
			var st trust.RepoStatus
			raw, err := s.create(s.ctx, path, req, &st)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			fmt.Fprintln(s.out, "initialized the TUF repository with offline root and targets keys")
			if err := printTUFStatus(s.out, st); err != nil {
				return err
			}
			fmt.Fprintln(s.out, "\nnext: steward ctl tuf unsigned root --out root.unsigned.json, sign it offline with"+
				" 'steward keys sign', then: steward ctl tuf add-signature root SIGFILE...")
			return nil
		}),
	}
	f := initCmd.Flags()
	f.StringArrayVar(&rootKeys, "root-key", nil, "a root public key file (PEM); repeat for each key")
	f.IntVar(&rootTh, "root-threshold", 0, "how many root keys must sign each root version (2 or more is recommended)")
	f.StringArrayVar(&targetsKeys, "targets-key", nil, "a targets public key file (PEM); repeat for each key")
	f.IntVar(&targetsTh, "targets-threshold", 1, "how many targets keys must sign each targets version")
	for _, n := range []string{"root-key", "root-threshold", "targets-key"} {
		_ = initCmd.MarkFlagRequired(n)
	}

	var out string
	unsigned := &cobra.Command{
		Use:   "unsigned root|targets [--out FILE]",
		Short: "Export the root or targets version awaiting signatures, for 'steward keys sign'",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			role, err := offlineRole(args[0])
			if err != nil {
				return err
			}
			path, err := s.orgPath("/tuf/" + url.PathEscape(string(role)) + "/unsigned")
			if err != nil {
				return err
			}
			var u trust.UnsignedMetadata
			raw, err := s.get(s.ctx, path, nil, &u)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
				return err
			}
			buf.WriteByte('\n')
			if out == "" || out == "-" {
				if _, err := s.out.Write(buf.Bytes()); err != nil {
					return err
				}
			} else if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(s.errOut, "%s version %d (sha256 %s) awaits signatures: %s\n", u.Role, u.Version, u.SignedSHA256,
				describeRequirements(u.Requirements))
			return nil
		}),
	}
	unsigned.Flags().StringVar(&out, "out", "", "write to FILE instead of stdout")

	addSig := &cobra.Command{
		Use:   "add-signature root|targets SIGFILE...",
		Short: "Add signatures made with 'steward keys sign'; the version is published once its threshold is met",
		Args:  cobra.MinimumNArgs(2),
		RunE: o.run(func(s *session, args []string) error {
			role, err := offlineRole(args[0])
			if err != nil {
				return err
			}
			path, err := s.orgPath("/tuf/" + url.PathEscape(string(role)) + "/signatures")
			if err != nil {
				return err
			}
			for _, file := range args[1:] {
				sig, err := readSignatureFile(file, role)
				if err != nil {
					return err
				}
				var st trust.SigningState
				raw, err := s.sendJSON(s.ctx, "POST", path, sig, &st)
				if err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
				if s.json {
					if err := s.printJSON(raw); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(s.out, "%s: %s\n", file, describeState(st))
			}
			return nil
		}),
	}

	var (
		newRootKeys []string
		newRootTh   int
	)
	rotate := &cobra.Command{
		Use:   "rotate-root --root-key PUB ... --root-threshold N",
		Short: "Stage the next root version with new root keys; a threshold of the old and of the new keys must sign it",
		Long: `Stage the next root version with new root keys and threshold. As TUF clients
check, it is published only once a threshold of the CURRENT root keys and a
threshold of the NEW keys have signed it: export it with 'tuf unsigned root'
and collect both kinds of signatures with 'steward keys sign'. Root keys the
server holds (the embedded default) sign at once. Giving the current keys
again renews root's expiry.`,
		Args: cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			req := trust.RotateRootRequest{RootThreshold: newRootTh}
			var err error
			if req.RootKeys, err = readPublicKeys("--root-key", trust.RoleRoot, newRootKeys); err != nil {
				return err
			}
			path, err := s.orgPath("/tuf/rotate-root")
			if err != nil {
				return err
			}
			return s.postSigning(path, req)
		}),
	}
	rotate.Flags().StringArrayVar(&newRootKeys, "root-key", nil, "a new root public key file (PEM); repeat for each key")
	rotate.Flags().IntVar(&newRootTh, "root-threshold", 0, "how many new root keys must sign each root version")
	_ = rotate.MarkFlagRequired("root-key")
	_ = rotate.MarkFlagRequired("root-threshold")

	renew := &cobra.Command{
		Use:   "renew-targets",
		Short: "Stage a targets version with a renewed expiry, for offline targets keys to sign before the current one expires",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/tuf/renew-targets")
			if err != nil {
				return err
			}
			return s.postSigning(path, nil)
		}),
	}

	cmd.AddCommand(status, initCmd, unsigned, addSig, rotate, renew)
	return cmd
}

func offlineRole(arg string) (trust.Role, error) {
	switch r := trust.Role(arg); r {
	case trust.RoleRoot, trust.RoleTargets:
		return r, nil
	}
	return "", fmt.Errorf("%q: give root or targets (snapshot and timestamp are signed by the server)", arg)
}

// readPublicKeys reads PEM public key files, refusing private keys before
// anything is sent.
func readPublicKeys(flag string, role trust.Role, files []string) ([]string, error) {
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		if _, err := trust.PublicKeyFromPEM(role, b); err != nil {
			return nil, fmt.Errorf("%s %s: %v", flag, f, err)
		}
		out = append(out, string(b))
	}
	return out, nil
}

// readSignatureFile reads what 'steward keys sign' wrote, strictly, so a
// wrong or damaged file fails here with its name.
func readSignatureFile(file string, role trust.Role) (trust.OfflineSignature, error) {
	var sig trust.OfflineSignature
	f, err := os.Open(file)
	if err != nil {
		return sig, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSignatureFile+1))
	if err != nil {
		return sig, fmt.Errorf("%s: %w", file, err)
	}
	if len(b) > maxSignatureFile {
		return sig, fmt.Errorf("%s is larger than %d KiB: not a signature file from 'steward keys sign'", file, maxSignatureFile>>10)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sig); err != nil {
		return sig, fmt.Errorf("%s is not a signature file from 'steward keys sign': %v", file, err)
	}
	if sig.KeyID == "" || sig.Sig == "" || sig.Version <= 0 || sig.SignedSHA256 == "" {
		return sig, fmt.Errorf("%s is not a signature file from 'steward keys sign': it lacks role, version, signed_sha256, keyid or sig", file)
	}
	if sig.Role != role {
		return sig, fmt.Errorf("%s holds a %s signature, not a %s one", file, sig.Role, role)
	}
	return sig, nil
}

// describeState says how far a version is: "root version 1: 2 of 2
// signatures, published" or "…: 1 of 2 signatures, waiting for 1 more from …".
func describeState(st trust.SigningState) string {
	head := fmt.Sprintf("%s version %d: ", st.Role, st.Version)
	if st.Published {
		return head + countSignatures(st.Requirements) + ", published"
	}
	return head + describeRequirements(st.Requirements)
}

func countSignatures(reqs []trust.SignatureRequirement) string {
	if len(reqs) == 1 {
		return fmt.Sprintf("%d of %d signatures", len(reqs[0].Signed), reqs[0].Threshold)
	}
	var parts []string
	for _, r := range reqs {
		parts = append(parts, fmt.Sprintf("%d of %d signatures from %s keys", len(r.Signed), r.Threshold, r.Keys))
	}
	return strings.Join(parts, ", ")
}

func describeRequirements(reqs []trust.SignatureRequirement) string {
	needed := 0
	var from []string
	for _, r := range reqs {
		needed += r.Needed
		if r.Needed > 0 {
			ids := make([]string, len(r.Missing))
			for i, id := range r.Missing {
				ids[i] = shortKeyID(id)
			}
			from = append(from, fmt.Sprintf("%d of %s keys %s", r.Needed, r.Keys, strings.Join(ids, ", ")))
		}
	}
	if needed == 0 {
		return countSignatures(reqs) + ", threshold met"
	}
	return fmt.Sprintf("%s, waiting for %d more: %s", countSignatures(reqs), needed, strings.Join(from, "; "))
}

func shortKeyID(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}

func printTUFStatus(w io.Writer, st trust.RepoStatus) error {
	if !st.Initialized {
		fmt.Fprintln(w, "no TUF repository yet")
	}
	t := newTable(w, "ROLE", "KEYS", "THRESHOLD", "VERSION", "EXPIRES", "STAGED")
	for _, r := range st.Roles {
		keys := "offline"
		if r.Online {
			keys = "ONLINE"
		}
		version, staged := "-", "-"
		if r.Version > 0 {
			version = strconv.FormatInt(r.Version, 10)
		}
		if r.Staged != nil {
			staged = fmt.Sprintf("version %d", r.Staged.Version)
		}
		t.row(string(r.Role), keys, fmt.Sprintf("%d of %d", r.Threshold, len(r.Keys)), version, optTime(r.Expires, "-"), staged)
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, r := range st.Roles {
		fmt.Fprintf(w, "\n%s keys:\n", r.Role)
		for _, k := range r.Keys {
			where := "offline"
			if k.Online {
				where = "online (held by the server)"
			}
			fmt.Fprintf(w, "  %s  %s  %s\n", k.KeyID, k.Type, where)
		}
		if r.Staged != nil {
			fmt.Fprintf(w, "  staged version %d (expires %s, sha256 %s): %s\n", r.Staged.Version, timestamp(r.Staged.Expires),
				r.Staged.SignedSHA256, describeRequirements(r.Staged.Requirements))
			for _, pt := range r.Staged.Targets {
				rel := ""
				if pt.ReleaseID != "" {
					rel = ", release " + pt.ReleaseID
				}
				fmt.Fprintf(w, "    awaiting signature: %s (%s%s)\n", clean(pt.Path), bytesIEC(pt.Length), rel)
			}
		}
	}
	if len(st.Warnings) > 0 {
		fmt.Fprintln(w)
	}
	for _, warn := range st.Warnings {
		fmt.Fprintln(w, "warning: "+clean(warn))
	}
	return nil
}

// postSigning sends a signing-ceremony change and prints the state it leaves.
func (s *session) postSigning(path string, body any) error {
	var st trust.SigningState
	raw, err := s.sendJSON(s.ctx, "POST", path, body, &st)
	if err != nil {
		return err
	}
	if s.json {
		return s.printJSON(raw)
	}
	_, err = fmt.Fprintln(s.out, describeState(st))
	return err
}

package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
)

// Encrypted keys are PKCS#8 EncryptedPrivateKeyInfo (RFC 5958) with PBES2
// (RFC 8018): PBKDF2-HMAC-SHA256 and AES-256-CBC, the scheme
// `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes, so the files stay readable
// by standard tools. The standard library reads and writes PKCS#8 but not
// its encrypted form.

var (
	oidPBES2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES256CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

// pbkdf2Iterations makes each passphrase guess cost about as much as
// OWASP's 2023 advice for PBKDF2-HMAC-SHA256; tests lower it.
var pbkdf2Iterations = 600_000

// maxIterations bounds what a key file may ask for, so a crafted file
// cannot keep the signing machine busy for hours.
const maxIterations = 10_000_000

// ErrWrongPassphrase is returned when an encrypted key does not decrypt.
var ErrWrongPassphrase = errors.New("wrong passphrase (or a damaged key file)")

type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

// encryptPKCS8 wraps the DER of a PKCS#8 PrivateKeyInfo.
func encryptPKCS8(der []byte, passphrase string) ([]byte, error) {
	salt := make([]byte, 16)
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	key, err := pbkdf2.Key(sha256.New, passphrase, salt, pbkdf2Iterations, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	pad := aes.BlockSize - len(der)%aes.BlockSize
	data := make([]byte, len(der)+pad)
	copy(data, der)
	for i := len(der); i < len(data); i++ {
		data[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(data, data)

	kdf, err := asn1.Marshal(pbkdf2Params{Salt: salt, IterationCount: pbkdf2Iterations,
		PRF: pkix.AlgorithmIdentifier{Algorithm: oidHMACWithSHA256, Parameters: asn1.NullRawValue}})
	if err != nil {
		return nil, err
	}
	ivDER, err := asn1.Marshal(iv)
	if err != nil {
		return nil, err
	}
	params, err := asn1.Marshal(pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdf}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}},
		EncryptedData: data,
	})
}

// decryptPKCS8 returns the PrivateKeyInfo DER inside an
// EncryptedPrivateKeyInfo. It reads PBES2 with PBKDF2 (HMAC-SHA256, or
// HMAC-SHA1 as older tools write) and AES-256-CBC.
func decryptPKCS8(der []byte, passphrase string) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if rest, err := asn1.Unmarshal(der, &info); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("not a PKCS#8 encrypted private key")
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("key encryption %v is not supported: use PBES2 (openssl pkcs8 -topk8 -v2 aes-256-cbc)", info.Algorithm.Algorithm)
	}
	var params pbes2Params
	if rest, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("damaged PBES2 parameters")
	}
	if !params.KeyDerivationFunc.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("key derivation %v is not supported: use PBKDF2", params.KeyDerivationFunc.Algorithm)
	}
	var kdf pbkdf2Params
	if rest, err := asn1.Unmarshal(params.KeyDerivationFunc.Parameters.FullBytes, &kdf); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("damaged PBKDF2 parameters")
	}
	var prf func() hash.Hash
	switch {
	case kdf.PRF.Algorithm.Equal(oidHMACWithSHA256):
		prf = sha256.New
	case len(kdf.PRF.Algorithm) == 0 || kdf.PRF.Algorithm.Equal(oidHMACWithSHA1): // RFC 8018's default
		prf = sha1.New
	default:
		return nil, fmt.Errorf("PBKDF2 with %v is not supported: use HMAC-SHA256", kdf.PRF.Algorithm)
	}
	if kdf.IterationCount < 1 || kdf.IterationCount > maxIterations {
		return nil, fmt.Errorf("PBKDF2 iteration count %d is outside 1 to %d", kdf.IterationCount, maxIterations)
	}
	if !params.EncryptionScheme.Algorithm.Equal(oidAES256CBC) {
		return nil, fmt.Errorf("key cipher %v is not supported: use AES-256-CBC", params.EncryptionScheme.Algorithm)
	}
	if kdf.KeyLength != 0 && kdf.KeyLength != 32 {
		return nil, fmt.Errorf("PBKDF2 key length %d does not fit AES-256", kdf.KeyLength)
	}
	var iv []byte
	if rest, err := asn1.Unmarshal(params.EncryptionScheme.Parameters.FullBytes, &iv); err != nil || len(rest) > 0 || len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("damaged AES-CBC parameters")
	}
	data := info.EncryptedData
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("damaged encrypted key: %d bytes is not a whole number of AES blocks", len(data))
	}
	key, err := pbkdf2.Key(prf, passphrase, kdf.Salt, kdf.IterationCount, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, data)
	// CBC has no integrity check: a wrong passphrase shows as bad padding
	// or, rarely, as DER that does not parse (the caller's check).
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > aes.BlockSize {
		return nil, ErrWrongPassphrase
	}
	for _, b := range plain[len(plain)-pad:] {
		if int(b) != pad {
			return nil, ErrWrongPassphrase
		}
	}
	return plain[:len(plain)-pad], nil
}

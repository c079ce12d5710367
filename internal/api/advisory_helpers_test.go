package api_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/steward-iot/steward/internal/advisory"
)

// advisoryDraft is a small valid draft.
func advisoryDraft(n int) advisory.Draft {
	return advisory.Draft{
		Title:     fmt.Sprintf("Advisory %d", n),
		Publisher: advisory.Publisher{Name: "Acme", Namespace: "https://acme.example"},
		Summary:   "A crafted packet crashes the gateway.",
		Products:  []advisory.Product{{ID: "gw-1.0", Vendor: "Acme", Name: "GW", Version: "1.0"}},
		Vulnerabilities: []advisory.Vulnerability{{CVE: "CVE-2026-0001", Summary: "Parser overflow.",
			KnownAffected: []string{"gw-1.0"},
			Remediations: []advisory.Remediation{{Category: advisory.RemediationNoneAvailable, Details: "None yet.",
				ProductIDs: []string{"gw-1.0"}}}}},
	}
}

var armoredKey = sync.OnceValue(func() string {
	ent, err := openpgp.NewEntity("Acme PSIRT", "", "psirt@acme.example", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA,
		// Older than the tests' fake clock, or the key would not be valid yet.
		Time: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		panic(err)
	}
	var b bytes.Buffer
	w, _ := armor.Encode(&b, openpgp.PrivateKeyType, nil)
	if err := ent.SerializePrivateWithoutSigning(w, nil); err != nil {
		panic(err)
	}
	w.Close()
	return b.String()
})

var _ = testing.Short

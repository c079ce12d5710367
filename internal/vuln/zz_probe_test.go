package vuln

import (
	_ "github.com/gocsaf/csaf/v3/csaf"
	_ "github.com/pandatix/go-cvss/31"
	_ "github.com/pandatix/go-cvss/40"
	_ "github.com/ProtonMail/go-crypto/openpgp"
)

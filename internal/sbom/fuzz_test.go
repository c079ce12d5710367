package sbom

import (
	"bytes"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"bomFormat":"CycloneDX","specVersion":"1.4","metadata":{"component":{"type":"operating-system","name":"ubuntu","version":"20.04"}},
		"components":[{"type":"library","name":"libssl1.1","version":"1.1.1f-1ubuntu2.16","purl":"pkg:deb/ubuntu/libssl1.1@1.1.1f-1ubuntu2.16?arch=amd64&upstream=openssl&distro=ubuntu-20.04",
		"licenses":[{"license":{"id":"OpenSSL"}}],"properties":[{"name":"syft:metadata:source","value":"openssl"}]},
		{"type":"library","name":"x","purl":"pkg:npm/%40scope/x"},{"type":"library","name":"y","purl":"pkg:"}]}`))
	f.Add([]byte(`{"spdxVersion":"SPDX-2.2","SPDXID":"SPDXRef-DOCUMENT","name":"img","packages":[
		{"SPDXID":"SPDXRef-OperatingSystem-1","name":"alpine","versionInfo":"3.16.1"},
		{"SPDXID":"SPDXRef-Package-1","name":"ssl_client","versionInfo":"1.35.0-r15","sourceInfo":"built package from: busybox 1.35.0-r15",
		 "licenseDeclared":"GPL-2.0, MIT","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:apk/alpine/ssl_client@1.35.0-r15?distro=3.16.1"}]}]}`))
	f.Add([]byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","packages":[{"SPDXID":"SPDXRef-a","name":"a","primaryPackagePurpose":"OPERATING-SYSTEM"},null]}`))
	f.Add([]byte(`<bom xmlns="http://cyclonedx.org/schema/bom/1.4"/>`))
	f.Add([]byte("SPDXVersion: SPDX-2.3\n"))
	f.Add([]byte(`[1]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Parse(bytes.NewReader(data), 1<<20)
		if err != nil {
			return
		}
		checkInvariants(t, doc)
	})
}

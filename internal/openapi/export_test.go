package openapi

// Device shares its name with openapi_test.Device, so the tests can check
// that two packages' types get distinct schema names.
type Device struct {
	Serial string `json:"serial"`
}

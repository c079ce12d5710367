package openapi_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/openapi"
)

var info = openapi.Info{Title: "Steward admin API", Version: "1.0.0", Description: "Fleet updates."}

type Base struct {
	ID        string    `json:"id" doc:"Unique identifier."`
	CreatedAt time.Time `json:"created_at"`
}

type Audit struct {
	UpdatedBy string `json:"updated_by"` // required in Audit, optional once promoted through *Audit
}

type versioned struct {
	Revision int `json:"revision"`
}

type Firmware struct {
	Version string `json:"version"`
	Size    uint64 `json:"size"`
}

type Device struct {
	Base
	*Audit
	versioned                    // unexported, but its exported fields are promoted
	Name      string             `json:"name"`
	Model     string             `json:"model,omitempty"`
	Status    string             `json:"status" enum:"online, offline,updating" doc:"Connection state."`
	Labels    map[string]string  `json:"labels,omitempty"`
	Firmware  *Firmware          `json:"firmware"`
	Pending   []Firmware         `json:"pending"`
	LastSeen  *time.Time         `json:"last_seen,omitzero"`
	Secret    string             `json:"-"`
	internal  int                // unexported: not encoded
	Interval  time.Duration      `json:"interval" doc:"Heartbeat interval."`
	Meta      json.RawMessage    `json:"meta,omitempty"`
	Cert      []byte             `json:"cert,omitempty"`
	Attrs     any                `json:"attrs,omitempty"`
	Slots     [2]uint8           `json:"slots"`
	Priority  *int               `json:"priority" enum:"1,2,3"`
	Channels  []string           `json:"channels,omitempty" enum:"stable,beta"`
	Count     uint               `json:"count,string"`
	Scores    map[string]float64 `json:"scores,omitempty"`
	Untagged  bool
}

type CreateDeviceRequest struct {
	Name  string            `json:"name" doc:"Display name."`
	Extra map[string]string `json:"extra,omitempty"`
}

type TreeNode struct {
	Name     string     `json:"name"`
	Children []TreeNode `json:"children,omitempty"`
	Parent   *TreeNode  `json:"parent,omitempty"`
	Owner    *Group     `json:"owner,omitempty"`
}

type Group struct {
	Root TreeNode `json:"root"`
}

type Inner struct {
	X     int    `json:"x"`
	Y     int    // ties with Inner2.Y at the same depth: dropped
	Tag   int    `json:"T"` // tagged beats Inner2's untagged "T"
	Inner string `json:"inner_only"`
}

type Inner2 struct {
	Y int
	T string
}

type Extra struct {
	Note string `json:"note"`
}

type Outer struct {
	Inner
	Inner2
	Extra `json:"extra"` // a named embedded struct is a field, not flattened
	X     string         `json:"x"` // shallower than Inner.X: wins
}

type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

type Problem struct {
	Code string `json:"code"`
}

func build(t *testing.T, ops []openapi.Operation) map[string]any {
	t.Helper()
	raw, err := openapi.Build(info, ops)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("decode: %v\n%s", err, raw)
	}
	checkRefs(t, doc)
	return doc
}

// get follows keys (object keys, or decimal indexes into arrays) from v.
func get(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for i, k := range keys {
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[k]
			if !ok {
				t.Fatalf("no key %q at %s", k, strings.Join(keys[:i], "/"))
			}
			v = next
		case []any:
			var n int
			if err := json.Unmarshal([]byte(k), &n); err != nil || n < 0 || n >= len(c) {
				t.Fatalf("bad index %q at %s (len %d)", k, strings.Join(keys[:i], "/"), len(c))
			}
			v = c[n]
		default:
			t.Fatalf("cannot index %T with %q at %s", v, k, strings.Join(keys[:i], "/"))
		}
	}
	return v
}

func has(v any, key string) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	_, ok = m[key]
	return ok
}

func equal(t *testing.T, what string, got any, wantJSON string) {
	t.Helper()
	var want any
	if err := json.Unmarshal([]byte(wantJSON), &want); err != nil {
		t.Fatalf("bad want for %s: %v", what, err)
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		t.Errorf("%s = %s, want %s", what, g, wantJSON)
	}
}

// checkRefs fails unless every $ref in doc is a local JSON pointer that
// resolves.
func checkRefs(t *testing.T, doc map[string]any) {
	t.Helper()
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch c := v.(type) {
		case map[string]any:
			if r, ok := c["$ref"]; ok {
				s, _ := r.(string)
				if !resolves(doc, s) {
					t.Errorf("%s: $ref %v does not resolve", at, r)
				}
			}
			for k, e := range c {
				walk(e, at+"/"+k)
			}
		case []any:
			for _, e := range c {
				walk(e, at+"/[]")
			}
		}
	}
	walk(doc, "#")
}

func resolves(doc map[string]any, ref string) bool {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	var v any = doc
	for _, k := range strings.Split(p, "/") {
		k = strings.NewReplacer("~1", "/", "~0", "~").Replace(k)
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[k]; !ok {
			return false
		}
	}
	return true
}

func schemaOf(t *testing.T, doc map[string]any, name string) map[string]any {
	t.Helper()
	s, ok := get(t, doc, "components", "schemas", name).(map[string]any)
	if !ok {
		t.Fatalf("schema %s is not an object", name)
	}
	return s
}

func deviceDoc(t *testing.T) map[string]any {
	return build(t, []openapi.Operation{{
		Method: "GET", Path: "/api/v1/devices/{id}", ID: "getDevice",
		Response: Device{internal: 1}, Errors: []int{404},
	}})
}

func TestDocumentSkeleton(t *testing.T) {
	doc := deviceDoc(t)
	equal(t, "openapi", doc["openapi"], `"3.1.0"`)
	equal(t, "info", doc["info"], `{"title":"Steward admin API","version":"1.0.0","description":"Fleet updates."}`)
	equal(t, "security", doc["security"], `[{"bearer":[]}]`)
	equal(t, "bearer", get(t, doc, "components", "securitySchemes", "bearer"), `{"type":"http","scheme":"bearer"}`)

	problem := schemaOf(t, doc, "Problem")
	props := problem["properties"].(map[string]any)
	for _, k := range []string{"type", "title", "status", "detail", "instance", "errors"} {
		if !has(props, k) {
			t.Errorf("Problem lacks %q", k)
		}
	}
	equal(t, "Problem.errors items required", get(t, props, "errors", "items", "required"), `["field","detail"]`)
	if has(problem, "required") {
		t.Errorf("Problem requires %v; RFC 9457 members are all optional", problem["required"])
	}
}

func TestSchemaRequiredAndOmitempty(t *testing.T) {
	doc := deviceDoc(t)
	dev := schemaOf(t, doc, "Device")
	// Field order as encoding/json writes them; omitempty/omitzero, "-",
	// unexported fields and fields of the embedded *Audit are not required.
	equal(t, "Device.required", dev["required"],
		`["id","created_at","revision","name","status","firmware","pending","interval","slots","priority","count","Untagged"]`)
	props := dev["properties"].(map[string]any)
	for _, gone := range []string{"Secret", "internal", "Base", "Audit", "versioned", "-"} {
		if has(props, gone) {
			t.Errorf("Device has property %q", gone)
		}
	}
	for _, opt := range []string{"model", "labels", "last_seen", "updated_by", "meta", "cert", "attrs", "channels"} {
		if !has(props, opt) {
			t.Errorf("Device lacks optional property %q", opt)
		}
	}
	equal(t, "Untagged", props["Untagged"], `{"type":"boolean"}`)
	equal(t, "name", props["name"], `{"type":"string"}`)
}

func TestSchemaTypes(t *testing.T) {
	props := schemaOf(t, deviceDoc(t), "Device")["properties"].(map[string]any)
	for name, want := range map[string]string{
		"created_at": `{"type":"string","format":"date-time"}`,
		"last_seen":  `{"type":["string","null"],"format":"date-time"}`,
		"interval":   `{"type":"integer","format":"int64","description":"Heartbeat interval. Duration in nanoseconds."}`,
		"meta":       `{}`,
		"attrs":      `{}`,
		"cert":       `{"type":"string","contentEncoding":"base64"}`,
		"slots":      `{"type":"array","items":{"type":"integer","format":"int32","minimum":0},"minItems":2,"maxItems":2}`,
		"labels":     `{"type":"object","additionalProperties":{"type":"string"}}`,
		"scores":     `{"type":"object","additionalProperties":{"type":"number","format":"double"}}`,
		"revision":   `{"type":"integer","format":"int64"}`,
		"count":      `{"type":"string"}`, // ",string" option
		"id":         `{"type":"string","description":"Unique identifier."}`,
	} {
		equal(t, name, props[name], want)
	}
	fw := schemaOf(t, deviceDoc(t), "Firmware")
	equal(t, "Firmware.size", get(t, fw, "properties", "size"), `{"type":"integer","minimum":0}`)
}

func TestSchemaNestedRefsAndPointers(t *testing.T) {
	props := schemaOf(t, deviceDoc(t), "Device")["properties"].(map[string]any)
	equal(t, "firmware", props["firmware"],
		`{"anyOf":[{"$ref":"#/components/schemas/Firmware"},{"type":"null"}]}`)
	equal(t, "pending", props["pending"], `{"type":"array","items":{"$ref":"#/components/schemas/Firmware"}}`)
}

func TestSchemaEnumTag(t *testing.T) {
	props := schemaOf(t, deviceDoc(t), "Device")["properties"].(map[string]any)
	equal(t, "status", props["status"],
		`{"type":"string","enum":["online","offline","updating"],"description":"Connection state."}`)
	equal(t, "priority", props["priority"], `{"type":["integer","null"],"format":"int64","enum":[1,2,3,null]}`)
	equal(t, "channels", props["channels"], `{"type":"array","items":{"type":"string","enum":["stable","beta"]}}`)
}

func TestSchemaEmbeddedFlattening(t *testing.T) {
	doc := build(t, []openapi.Operation{{Method: "GET", Path: "/o", ID: "o", Response: Outer{}}})
	outer := schemaOf(t, doc, "Outer")
	equal(t, "Outer.properties", outer["properties"], `{
		"x": {"type":"string"},
		"T": {"type":"integer","format":"int64"},
		"inner_only": {"type":"string"},
		"extra": {"$ref":"#/components/schemas/Extra"}
	}`)
	equal(t, "Outer.required", outer["required"], `["T","inner_only","extra","x"]`)
	for _, name := range []string{"Inner", "Inner2"} {
		if has(get(t, doc, "components", "schemas"), name) {
			t.Errorf("flattened %s also became a component", name)
		}
	}
}

// TestRequiredMatchesEncodingJSON checks the flattening and omitempty rules
// against the encoder itself: a zero value is written with exactly the
// required properties, in the same order.
func TestRequiredMatchesEncodingJSON(t *testing.T) {
	doc := build(t, []openapi.Operation{
		{Method: "GET", Path: "/d", ID: "d", Response: Device{}},
		{Method: "GET", Path: "/o", ID: "o", Response: Outer{}},
		{Method: "GET", Path: "/t", ID: "t", Response: TreeNode{}},
	})
	for name, v := range map[string]any{"Device": Device{}, "Outer": Outer{}, "TreeNode": TreeNode{}} {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		keys := topLevelKeys(t, raw)
		if got := schemaOf(t, doc, name)["required"]; !reflect.DeepEqual(got, keys) {
			t.Errorf("%s: required %v, encoding/json writes %v", name, got, keys)
		}
	}
}

func topLevelKeys(t *testing.T, raw []byte) []any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var keys []any
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestSchemaRecursiveType(t *testing.T) {
	doc := build(t, []openapi.Operation{{Method: "GET", Path: "/tree", ID: "tree", Response: []TreeNode{}}})
	equal(t, "response", get(t, doc, "paths", "/tree", "get", "responses", "200", "content", "application/json", "schema"),
		`{"type":"array","items":{"$ref":"#/components/schemas/TreeNode"}}`)
	props := schemaOf(t, doc, "TreeNode")["properties"].(map[string]any)
	equal(t, "children", props["children"], `{"type":"array","items":{"$ref":"#/components/schemas/TreeNode"}}`)
	equal(t, "parent", props["parent"], `{"anyOf":[{"$ref":"#/components/schemas/TreeNode"},{"type":"null"}]}`)
	equal(t, "Group.root", get(t, schemaOf(t, doc, "Group"), "properties", "root"), `{"$ref":"#/components/schemas/TreeNode"}`)
}

func localItemA() any {
	type item struct {
		A int `json:"a"`
	}
	return item{}
}

func localItemB() any {
	type item struct {
		B int `json:"b"`
	}
	return item{}
}

func TestSchemaNameCollisions(t *testing.T) {
	type both struct {
		Mine   Device         `json:"mine"`
		Theirs openapi.Device `json:"theirs"`
		Page   Page[Firmware] `json:"page"`
		Err    Problem        `json:"err"`
		A      any            `json:"a"`
	}
	ops := []openapi.Operation{
		{Method: "GET", Path: "/both", ID: "both", Response: both{}},
		{Method: "GET", Path: "/a", ID: "a", Response: localItemA()},
		{Method: "GET", Path: "/b", ID: "b", Response: localItemB()},
	}
	doc := build(t, ops)
	schemas := get(t, doc, "components", "schemas").(map[string]any)
	props := schemaOf(t, doc, "both")["properties"].(map[string]any)
	equal(t, "mine", props["mine"], `{"$ref":"#/components/schemas/openapi_test.Device"}`)
	equal(t, "theirs", props["theirs"], `{"$ref":"#/components/schemas/openapi.Device"}`)
	equal(t, "page", props["page"], `{"$ref":"#/components/schemas/Page_Firmware"}`)
	equal(t, "err", props["err"], `{"$ref":"#/components/schemas/openapi_test.Problem"}`)
	equal(t, "theirs schema", get(t, schemas, "openapi.Device", "required"), `["serial"]`)
	if has(schemas, "Device") {
		t.Error("ambiguous unqualified Device schema")
	}
	// The built-in Problem is not replaced by the user's type.
	if !has(get(t, schemas, "Problem", "properties"), "detail") {
		t.Error("Problem schema was overwritten")
	}
	// Same package and name (function-local types): numbered in route order.
	equal(t, "a", get(t, doc, "paths", "/a", "get", "responses", "200", "content", "application/json", "schema"),
		`{"$ref":"#/components/schemas/openapi_test.item"}`)
	equal(t, "item", get(t, schemas, "openapi_test.item", "required"), `["a"]`)
	equal(t, "item_2", get(t, schemas, "openapi_test.item_2", "required"), `["b"]`)
}

func TestUnsupportedTypes(t *testing.T) {
	for name, v := range map[string]any{
		"chan":    struct{ C chan int }{},
		"func":    struct{ F func() }{},
		"complex": struct{ C complex128 }{},
		"map key": struct{ M map[float64]string }{},
		"int enum": struct {
			N int `enum:"1,two"`
		}{},
		"struct enum": struct {
			F Firmware `enum:"a"`
		}{},
	} {
		_, err := openapi.Build(info, []openapi.Operation{{Method: "POST", Path: "/x", ID: "x", Request: v}})
		if err == nil {
			t.Errorf("%s: Build succeeded", name)
		}
	}
}

func routes() []openapi.Operation {
	return []openapi.Operation{
		{Method: "GET", Path: "/api/v1/health", ID: "health", Summary: "Liveness", Tags: []string{"system"}, Public: true, Status: 204},
		{
			Method: "GET", Path: "/api/v1/orgs/{org}/devices", ID: "listDevices", Summary: "List devices", Tags: []string{"devices"},
			Params: []openapi.Param{
				{Name: "limit", In: "query", Description: "Page size.", Schema: 0},
				{Name: "labels", In: "query", Schema: []string{}},
				{Name: "X-Request-ID", In: "header"},
			},
			Response: Page[Device]{}, Errors: []int{400, 401, 403},
		},
		{
			Method: "POST", Path: "/api/v1/orgs/{org}/devices", ID: "createDevice", Tags: []string{"devices"},
			Request: &CreateDeviceRequest{}, Response: Device{}, Status: 201, Errors: []int{400, 409},
		},
		{
			Method: "DELETE", Path: "/api/v1/orgs/{org}/devices/{id}", ID: "deleteDevice", Tags: []string{"devices"},
			Params: []openapi.Param{{Name: "id", In: "path", Description: "Device number.", Schema: int64(0)}},
			Errors: []int{404},
		},
		{Method: "GET", Path: "/api/v1/files/{path...}", ID: "getFile", Response: []byte{}},
		{Method: "GET", Path: "/api/v1/{$}", ID: "root", Public: true, Response: map[string]string{}},
	}
}

func TestPathsAndOperations(t *testing.T) {
	doc := build(t, routes())
	paths := get(t, doc, "paths").(map[string]any)
	for _, p := range []string{"/api/v1/health", "/api/v1/orgs/{org}/devices", "/api/v1/orgs/{org}/devices/{id}", "/api/v1/files/{path}", "/api/v1/"} {
		if !has(paths, p) {
			t.Errorf("missing path %s", p)
		}
	}
	if len(paths) != 5 {
		t.Errorf("got %d paths, want 5", len(paths))
	}
	equal(t, "tags", doc["tags"], `[{"name":"devices"},{"name":"system"}]`)

	list := get(t, paths, "/api/v1/orgs/{org}/devices", "get")
	equal(t, "listDevices.parameters", get(t, list, "parameters"), `[
		{"name":"org","in":"path","required":true,"schema":{"type":"string"}},
		{"name":"limit","in":"query","description":"Page size.","schema":{"type":"integer","format":"int64"}},
		{"name":"labels","in":"query","schema":{"type":"array","items":{"type":"string"}}},
		{"name":"X-Request-ID","in":"header","schema":{"type":"string"}}
	]`)
	equal(t, "listDevices.summary", get(t, list, "summary"), `"List devices"`)
	equal(t, "listDevices.tags", get(t, list, "tags"), `["devices"]`)
	equal(t, "listDevices 200", get(t, list, "responses", "200"),
		`{"description":"OK","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Page_Device"}}}}`)
	for _, code := range []string{"400", "401", "403", "default"} {
		equal(t, "listDevices "+code, get(t, list, "responses", code, "content"),
			`{"application/problem+json":{"schema":{"$ref":"#/components/schemas/Problem"}}}`)
	}
	equal(t, "401 description", get(t, list, "responses", "401", "description"), `"Unauthorized"`)
	if has(list, "security") {
		t.Error("authenticated operation overrides security")
	}
	if has(list, "requestBody") {
		t.Error("GET without Request has a requestBody")
	}

	create := get(t, paths, "/api/v1/orgs/{org}/devices", "post")
	equal(t, "createDevice.operationId", get(t, create, "operationId"), `"createDevice"`)
	equal(t, "createDevice.requestBody", get(t, create, "requestBody"),
		`{"required":true,"content":{"application/json":{"schema":{"$ref":"#/components/schemas/CreateDeviceRequest"}}}}`)
	equal(t, "createDevice 201", get(t, create, "responses", "201", "content", "application/json", "schema"),
		`{"$ref":"#/components/schemas/Device"}`)
	equal(t, "CreateDeviceRequest", get(t, doc, "components", "schemas", "CreateDeviceRequest"), `{
		"type":"object","required":["name"],
		"properties":{"name":{"type":"string","description":"Display name."},"extra":{"type":"object","additionalProperties":{"type":"string"}}}
	}`)

	del := get(t, paths, "/api/v1/orgs/{org}/devices/{id}", "delete")
	equal(t, "deleteDevice.parameters", get(t, del, "parameters"), `[
		{"name":"org","in":"path","required":true,"schema":{"type":"string"}},
		{"name":"id","in":"path","required":true,"description":"Device number.","schema":{"type":"integer","format":"int64"}}
	]`)
	equal(t, "deleteDevice 204", get(t, del, "responses", "204"), `{"description":"No Content"}`)

	equal(t, "getFile path param", get(t, paths, "/api/v1/files/{path}", "get", "parameters", "0"),
		`{"name":"path","in":"path","required":true,"description":"Remainder of the path; may contain '/'.","schema":{"type":"string"}}`)

	health := get(t, paths, "/api/v1/health", "get")
	equal(t, "health.security", get(t, health, "security"), `[]`)
	equal(t, "health 204", get(t, health, "responses", "204"), `{"description":"No Content"}`)
	if has(health, "parameters") {
		t.Error("health has parameters")
	}
	equal(t, "root.security", get(t, paths, "/api/v1/", "get", "security"), `[]`)
}

func TestDefaultStatus(t *testing.T) {
	doc := build(t, []openapi.Operation{
		{Method: "GET", Path: "/with", ID: "with", Response: Firmware{}},
		{Method: "POST", Path: "/without", ID: "without"},
	})
	if !has(get(t, doc, "paths", "/with", "get", "responses"), "200") {
		t.Error("operation with a response body does not default to 200")
	}
	if !has(get(t, doc, "paths", "/without", "post", "responses"), "204") {
		t.Error("operation without a response body does not default to 204")
	}
}

func TestDeterministic(t *testing.T) {
	first, err := openapi.Build(info, routes())
	if err != nil {
		t.Fatal(err)
	}
	// Maps inside the generator are iterated in random order; repeat to
	// give any dependence on that order a chance to show.
	for range 20 {
		again, err := openapi.Build(info, routes())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatal("two builds of the same input differ")
		}
	}
	if !json.Valid(first) || !bytes.HasPrefix(first, []byte("{\n  \"")) {
		t.Errorf("output is not indented JSON: %.40q", first)
	}
}

func TestBuildErrors(t *testing.T) {
	op := func(method, path, id string) openapi.Operation {
		return openapi.Operation{Method: method, Path: path, ID: id}
	}
	withParams := func(o openapi.Operation, ps ...openapi.Param) openapi.Operation {
		o.Params = ps
		return o
	}
	for _, tc := range []struct {
		name string
		info openapi.Info
		ops  []openapi.Operation
		want string
	}{
		{"missing title", openapi.Info{Version: "1"}, nil, "title"},
		{"duplicate method and path", info, []openapi.Operation{op("GET", "/a/{x}", "a"), op("GET", "/a/{x}", "b")}, "duplicate method and path"},
		{"conflicting wildcard names", info, []openapi.Operation{op("GET", "/a/{x}", "a"), op("PUT", "/a/{y}", "b")}, "conflicts"},
		{"duplicate operation ID", info, []openapi.Operation{op("GET", "/a", "same"), op("POST", "/a", "same")}, "duplicate operation ID"},
		{"missing operation ID", info, []openapi.Operation{op("GET", "/a", "")}, "missing operation ID"},
		{"path param not in path", info, []openapi.Operation{withParams(op("GET", "/a/{id}", "a"), openapi.Param{Name: "org", In: "path"})}, `"org" is not in the path`},
		{"unclosed brace", info, []openapi.Operation{op("GET", "/a/{id", "a")}, "malformed"},
		{"unopened brace", info, []openapi.Operation{op("GET", "/a/id}", "a")}, "malformed"},
		{"partial segment", info, []openapi.Operation{op("GET", "/a/x{id}", "a")}, "malformed"},
		{"two wildcards in a segment", info, []openapi.Operation{op("GET", "/a/{x}{y}", "a")}, "malformed"},
		{"empty wildcard", info, []openapi.Operation{op("GET", "/a/{}", "a")}, "not a Go identifier"},
		{"bad wildcard name", info, []openapi.Operation{op("GET", "/a/{a-b}", "a")}, "not a Go identifier"},
		{"rest wildcard not last", info, []openapi.Operation{op("GET", "/a/{p...}/b", "a")}, "last segment"},
		{"end anchor not last", info, []openapi.Operation{op("GET", "/{$}/a", "a")}, "last segment"},
		{"duplicate wildcard", info, []openapi.Operation{op("GET", "/a/{x}/b/{x}", "a")}, "duplicate wildcard"},
		{"relative path", info, []openapi.Operation{op("GET", "a/b", "a")}, "must start with"},
		{"lower-case method", info, []openapi.Operation{op("get", "/a", "a")}, "unsupported method"},
		{"bad param location", info, []openapi.Operation{withParams(op("GET", "/a", "a"), openapi.Param{Name: "c", In: "cookie"})}, "unsupported location"},
		{"duplicate header param", info, []openapi.Operation{withParams(op("GET", "/a", "a"), openapi.Param{Name: "X-A", In: "header"}, openapi.Param{Name: "x-a", In: "header"})}, "duplicate header parameter"},
		{"body with 204", info, []openapi.Operation{{Method: "GET", Path: "/a", ID: "a", Response: Firmware{}, Status: 204}}, "cannot have a response body"},
		{"error status not an error", info, []openapi.Operation{{Method: "GET", Path: "/a", ID: "a", Errors: []int{200}}}, "not 4xx or 5xx"},
		{"unsupported field type", info, []openapi.Operation{{Method: "GET", Path: "/a", ID: "a", Response: struct{ C chan int }{}}}, "unsupported type chan int"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := openapi.Build(tc.info, tc.ops)
			if err == nil {
				t.Fatalf("Build succeeded:\n%s", out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

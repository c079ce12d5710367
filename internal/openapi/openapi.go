// Package openapi generates the OpenAPI 3.1 document of the admin API from the
// route table and Go types, so the served document cannot drift from the
// routes that are actually registered.
package openapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Param documents a parameter that is not derived from the path pattern, or
// overrides a derived path parameter (e.g. to give it a description or an
// integer schema).
type Param struct {
	Name        string
	In          string // "path", "query" or "header"
	Description string
	Required    bool // forced to true for path parameters, as OpenAPI demands
	Schema      any  // zero value of a Go type, e.g. "" or 0; nil means string
}

// Operation is one route of the admin API.
type Operation struct {
	Method  string // "GET", "POST", ...
	Path    string // Go 1.22 ServeMux pattern path, e.g. "/api/v1/orgs/{org}/tokens/{id}"; {name} segments become required string path params unless given in Params
	ID      string // operationId, e.g. "createToken"
	Summary string
	Tags    []string
	Params  []Param // extra query/header params, or overrides of path params
	Request any     // zero value of the request body type, nil if none
	// Response is the zero value of the success body type, nil for no body.
	Response any
	Status   int   // success status; 0 means 200 with a Response, 204 without
	Public   bool  // true: no bearer auth required
	Errors   []int // error statuses, each documented as application/problem+json
}

// Info is the document's info object.
type Info struct{ Title, Version, Description string }

const (
	problemName = "Problem"
	problemRef  = "#/components/schemas/" + problemName
	problemType = "application/problem+json"
)

// pathItemMethods are the methods an OpenAPI 3.1 path item can hold; others
// could be registered on a ServeMux but not documented.
var pathItemMethods = map[string]bool{
	http.MethodGet: true, http.MethodPut: true, http.MethodPost: true, http.MethodDelete: true,
	http.MethodOptions: true, http.MethodHead: true, http.MethodPatch: true, http.MethodTrace: true,
}

// Build returns the indented JSON OpenAPI 3.1.0 document for ops. Identical
// input gives identical bytes: objects are maps, which encoding/json writes
// with sorted keys, and every list follows the order of the input.
func Build(info Info, ops []Operation) ([]byte, error) {
	if info.Title == "" || info.Version == "" {
		return nil, errors.New("openapi: info title and version are required")
	}
	b := &builder{
		gen:       newGenerator(),
		paths:     map[string]map[string]any{},
		templates: map[string]string{},
		ids:       map[string]bool{},
		tags:      map[string]bool{},
	}
	for i := range ops {
		if err := b.add(&ops[i]); err != nil {
			return nil, fmt.Errorf("openapi: %s %s: %w", ops[i].Method, ops[i].Path, err)
		}
	}
	schemas, err := b.gen.components()
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	schemas[problemName] = problemSchema()

	infoObj := map[string]any{"title": info.Title, "version": info.Version}
	if info.Description != "" {
		infoObj["description"] = info.Description
	}
	tags := make([]any, 0, len(b.tags))
	for _, t := range slices.Sorted(maps.Keys(b.tags)) {
		tags = append(tags, map[string]any{"name": t})
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info":    infoObj,
		"paths":   b.paths,
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer"},
			},
		},
		"security": []any{map[string]any{"bearer": []any{}}},
	}
	if len(tags) > 0 {
		doc["tags"] = tags
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // descriptions are read by people, not embedded in HTML
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return buf.Bytes(), nil
}

type builder struct {
	gen   *generator
	paths map[string]map[string]any // template -> lowercase method -> operation
	// templates maps a template with its wildcard names erased to the
	// template first seen, to catch "/a/{x}" next to "/a/{y}".
	templates map[string]string
	ids       map[string]bool
	tags      map[string]bool
}

func (b *builder) add(op *Operation) error {
	if !pathItemMethods[op.Method] {
		return fmt.Errorf("unsupported method %q (want an upper-case HTTP method)", op.Method)
	}
	tmpl, shape, wildcards, err := parsePath(op.Path)
	if err != nil {
		return err
	}
	// OpenAPI treats templates that differ only in wildcard names as the same
	// path and forbids both, although ServeMux accepts them on different methods.
	if prev, ok := b.templates[shape]; ok && prev != tmpl {
		return fmt.Errorf("path template %q conflicts with %q: use the same wildcard names", tmpl, prev)
	}
	b.templates[shape] = tmpl
	method := strings.ToLower(op.Method)
	if _, dup := b.paths[tmpl][method]; dup {
		return errors.New("duplicate method and path")
	}
	if op.ID == "" {
		return errors.New("missing operation ID")
	}
	if b.ids[op.ID] {
		return fmt.Errorf("duplicate operation ID %q", op.ID)
	}
	b.ids[op.ID] = true

	obj, err := b.operation(op, wildcards)
	if err != nil {
		return fmt.Errorf("%s: %w", op.ID, err)
	}
	if b.paths[tmpl] == nil {
		b.paths[tmpl] = map[string]any{}
	}
	b.paths[tmpl][method] = obj
	for _, t := range op.Tags {
		b.tags[t] = true
	}
	return nil
}

func (b *builder) operation(op *Operation, wildcards []wildcard) (map[string]any, error) {
	obj := map[string]any{"operationId": op.ID}
	if op.Summary != "" {
		obj["summary"] = op.Summary
	}
	if len(op.Tags) > 0 {
		obj["tags"] = slices.Clone(op.Tags)
	}
	if op.Public {
		obj["security"] = []any{} // overrides the document-wide bearer requirement
	}

	params, err := b.parameters(op.Params, wildcards)
	if err != nil {
		return nil, err
	}
	if len(params) > 0 {
		obj["parameters"] = params
	}

	if op.Request != nil {
		s, err := b.gen.body(op.Request)
		if err != nil {
			return nil, fmt.Errorf("request body: %w", err)
		}
		obj["requestBody"] = map[string]any{
			"required": true,
			"content":  map[string]any{"application/json": map[string]any{"schema": s}},
		}
	}

	status := op.Status
	if status == 0 {
		status = http.StatusNoContent
		if op.Response != nil {
			status = http.StatusOK
		}
	}
	if status < 200 || status > 399 {
		return nil, fmt.Errorf("success status %d is not 2xx or 3xx", status)
	}
	success := map[string]any{"description": statusText(status)}
	if op.Response != nil {
		if status == http.StatusNoContent || status == http.StatusNotModified {
			return nil, fmt.Errorf("status %d cannot have a response body", status)
		}
		s, err := b.gen.body(op.Response)
		if err != nil {
			return nil, fmt.Errorf("response body: %w", err)
		}
		success["content"] = map[string]any{"application/json": map[string]any{"schema": s}}
	}
	responses := map[string]any{
		strconv.Itoa(status): success,
		"default":            problemResponse("Unexpected error"),
	}
	for _, code := range op.Errors {
		if code < 400 || code > 599 {
			return nil, fmt.Errorf("error status %d is not 4xx or 5xx", code)
		}
		responses[strconv.Itoa(code)] = problemResponse(statusText(code))
	}
	obj["responses"] = responses
	return obj, nil
}

// parameters lists path parameters in path order, then the other params in
// the order given.
func (b *builder) parameters(given []Param, wildcards []wildcard) ([]any, error) {
	inPath := map[string]bool{}
	for _, w := range wildcards {
		inPath[w.name] = true
	}
	overrides := map[string]Param{}
	seen := map[string]bool{}
	for _, p := range given {
		if p.Name == "" {
			return nil, errors.New("parameter without a name")
		}
		key := p.In + " " + p.Name
		switch p.In {
		case "path":
			if !inPath[p.Name] {
				return nil, fmt.Errorf("path parameter %q is not in the path", p.Name)
			}
			overrides[p.Name] = p
		case "header":
			key = p.In + " " + strings.ToLower(p.Name) // header names are case-insensitive
		case "query":
		default:
			return nil, fmt.Errorf("parameter %q: unsupported location %q", p.Name, p.In)
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate %s parameter %q", p.In, p.Name)
		}
		seen[key] = true
	}

	out := make([]any, 0, len(wildcards)+len(given))
	for _, w := range wildcards {
		p, ok := overrides[w.name]
		if !ok {
			p = Param{Name: w.name, In: "path"}
			if w.rest {
				p.Description = "Remainder of the path; may contain '/'."
			}
		}
		p.Required = true
		obj, err := b.param(p)
		if err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	for _, p := range given {
		if p.In == "path" {
			continue
		}
		obj, err := b.param(p)
		if err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	return out, nil
}

func (b *builder) param(p Param) (map[string]any, error) {
	s := schema{"type": "string"}
	if p.Schema != nil {
		var err error
		if s, err = b.gen.body(p.Schema); err != nil {
			return nil, fmt.Errorf("parameter %q: %w", p.Name, err)
		}
	}
	obj := map[string]any{"name": p.Name, "in": p.In, "schema": s}
	if p.Required {
		obj["required"] = true
	}
	if p.Description != "" {
		obj["description"] = p.Description
	}
	return obj, nil
}

type wildcard struct {
	name string
	rest bool // {name...}: matches the remainder of the path
}

// parsePath turns a ServeMux pattern path into an OpenAPI template, the
// template with wildcard names erased, and the wildcards in order. It rejects
// the malformed wildcards that ServeMux would reject at registration.
func parsePath(p string) (tmpl, shape string, wildcards []wildcard, err error) {
	if !strings.HasPrefix(p, "/") {
		return "", "", nil, fmt.Errorf("path %q must start with '/'", p)
	}
	segs := strings.Split(p[1:], "/")
	shapes := make([]string, len(segs))
	seen := map[string]bool{}
	for i, seg := range segs {
		shapes[i] = seg
		if !strings.ContainsAny(seg, "{}") {
			continue
		}
		last := i == len(segs)-1
		if len(seg) < 2 || seg[0] != '{' || seg[len(seg)-1] != '}' || strings.Count(seg, "{") != 1 || strings.Count(seg, "}") != 1 {
			return "", "", nil, fmt.Errorf("path %q: malformed wildcard segment %q (must be a whole segment {name})", p, seg)
		}
		name := seg[1 : len(seg)-1]
		if name == "$" { // {$} anchors the end of a path ending in '/'
			if !last {
				return "", "", nil, fmt.Errorf("path %q: {$} must be the last segment", p)
			}
			segs[i], shapes[i] = "", ""
			continue
		}
		w := wildcard{name: name}
		if n, ok := strings.CutSuffix(name, "..."); ok {
			if !last {
				return "", "", nil, fmt.Errorf("path %q: {%s} must be the last segment", p, name)
			}
			w = wildcard{name: n, rest: true}
		}
		if !isIdent(w.name) {
			return "", "", nil, fmt.Errorf("path %q: wildcard name %q is not a Go identifier", p, w.name)
		}
		if seen[w.name] {
			return "", "", nil, fmt.Errorf("path %q: duplicate wildcard %q", p, w.name)
		}
		seen[w.name] = true
		segs[i], shapes[i] = "{"+w.name+"}", "{}"
		wildcards = append(wildcards, w)
	}
	return "/" + strings.Join(segs, "/"), "/" + strings.Join(shapes, "/"), wildcards, nil
}

func isIdent(s string) bool {
	for i, c := range s {
		if c != '_' && !unicode.IsLetter(c) && (i == 0 || !unicode.IsDigit(c)) {
			return false
		}
	}
	return s != ""
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "Status " + strconv.Itoa(code)
}

func problemResponse(description string) map[string]any {
	return map[string]any{
		"description": description,
		"content": map[string]any{
			problemType: map[string]any{"schema": map[string]any{"$ref": problemRef}},
		},
	}
}

// problemSchema is RFC 9457 problem details, with the validation errors
// extension. The RFC makes every member optional, so none is required.
func problemSchema() schema {
	str := func(desc string) schema { return schema{"type": "string", "description": desc} }
	return schema{
		"type":        "object",
		"description": "Problem details (RFC 9457).",
		"properties": schema{
			"type": schema{
				"type": "string", "format": "uri-reference", "default": "about:blank",
				"description": "URI reference identifying the problem type.",
			},
			"title":    str("Short, human-readable summary of the problem type."),
			"status":   schema{"type": "integer", "format": "int32", "minimum": 100, "maximum": 599, "description": "HTTP status code."},
			"detail":   str("Human-readable explanation specific to this occurrence."),
			"instance": schema{"type": "string", "format": "uri-reference", "description": "URI reference identifying this occurrence."},
			"errors": schema{
				"type":        "array",
				"description": "Per-field validation errors.",
				"items": schema{
					"type":     "object",
					"required": []any{"field", "detail"},
					"properties": schema{
						"field":  str("Name of the invalid field."),
						"detail": str("Why the field is invalid."),
					},
				},
			},
		},
	}
}

// body returns the schema of a body or parameter given as a zero value. A
// top-level pointer only says how the caller holds the value, so it does not
// make the body nullable.
func (g *generator) body(v any) (schema, error) {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return g.schemaOf(t)
}

package openapi

import (
	"cmp"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// schema is a JSON Schema 2020-12 object. Maps keep the encoded key order
// sorted, which makes the document deterministic.
type schema = map[string]any

var (
	timeType          = reflect.TypeFor[time.Time]()
	durationType      = reflect.TypeFor[time.Duration]()
	rawMessageType    = reflect.TypeFor[json.RawMessage]()
	numberType        = reflect.TypeFor[json.Number]()
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// ref points at a component schema. Its name is filled in only after every
// type has been seen, because name collisions decide the names.
type ref struct{ name string }

func (r *ref) MarshalJSON() ([]byte, error) {
	return json.Marshal("#/components/schemas/" + r.name)
}

// generator turns Go types into schemas the way encoding/json encodes them.
// Named struct types become components, which also stops recursive types.
type generator struct {
	refs    map[reflect.Type]*ref
	schemas map[reflect.Type]schema
	order   []reflect.Type // first-encounter order, for deterministic names
}

func newGenerator() *generator {
	return &generator{refs: map[reflect.Type]*ref{}, schemas: map[reflect.Type]schema{}}
}

// schemaOf returns a fresh schema for t, which callers may modify.
func (g *generator) schemaOf(t reflect.Type) (schema, error) {
	switch t {
	case timeType:
		return schema{"type": "string", "format": "date-time"}, nil
	case durationType:
		// encoding/json writes a Duration as its int64, not as "1m30s".
		return schema{"type": "integer", "format": "int64", "description": "Duration in nanoseconds."}, nil
	case rawMessageType:
		return schema{}, nil
	case numberType:
		return schema{"type": "number"}, nil
	}
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface {
		// Custom encodings win over the kind, as in encoding/json; a
		// MarshalJSON can produce anything, a MarshalText only a string.
		if implements(t, marshalerType) {
			return schema{}, nil
		}
		if implements(t, textMarshalerType) {
			return schema{"type": "string"}, nil
		}
	}

	switch t.Kind() {
	case reflect.Bool:
		return schema{"type": "boolean"}, nil
	case reflect.Int8, reflect.Int16, reflect.Int32:
		return schema{"type": "integer", "format": "int32"}, nil
	case reflect.Int, reflect.Int64:
		return schema{"type": "integer", "format": "int64"}, nil
	case reflect.Uint8, reflect.Uint16:
		return schema{"type": "integer", "format": "int32", "minimum": 0}, nil
	case reflect.Uint32:
		return schema{"type": "integer", "format": "int64", "minimum": 0}, nil
	case reflect.Uint, reflect.Uint64, reflect.Uintptr:
		// No format: int64 would wrongly cap the range at 2^63-1.
		return schema{"type": "integer", "minimum": 0}, nil
	case reflect.Float32:
		return schema{"type": "number", "format": "float"}, nil
	case reflect.Float64:
		return schema{"type": "number", "format": "double"}, nil
	case reflect.String:
		return schema{"type": "string"}, nil
	case reflect.Interface:
		return schema{}, nil
	case reflect.Pointer:
		s, err := g.schemaOf(t.Elem())
		if err != nil {
			return nil, err
		}
		return nullable(s), nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return schema{"type": "string", "contentEncoding": "base64"}, nil
		}
		items, err := g.schemaOf(t.Elem())
		if err != nil {
			return nil, err
		}
		return schema{"type": "array", "items": items}, nil
	case reflect.Array:
		items, err := g.schemaOf(t.Elem())
		if err != nil {
			return nil, err
		}
		return schema{"type": "array", "items": items, "minItems": t.Len(), "maxItems": t.Len()}, nil
	case reflect.Map:
		switch k := t.Key(); {
		case k.Kind() == reflect.String, isInteger(k.Kind()), implements(k, textMarshalerType):
		default:
			return nil, fmt.Errorf("unsupported map key type %s", k)
		}
		values, err := g.schemaOf(t.Elem())
		if err != nil {
			return nil, err
		}
		return schema{"type": "object", "additionalProperties": values}, nil
	case reflect.Struct:
		if t.Name() == "" {
			return g.structSchema(t)
		}
		return g.component(t)
	}
	return nil, fmt.Errorf("unsupported type %s", t)
}

func (g *generator) component(t reflect.Type) (schema, error) {
	r, ok := g.refs[t]
	if !ok {
		// Register before descending so a recursive field finds the ref.
		r = &ref{}
		g.refs[t] = r
		g.order = append(g.order, t)
		s, err := g.structSchema(t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		g.schemas[t] = s
	}
	return schema{"$ref": r}, nil
}

func (g *generator) structSchema(t reflect.Type) (schema, error) {
	props := schema{}
	required := []any{}
	for _, f := range jsonFields(t) {
		s, err := g.fieldSchema(f)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.goName, err)
		}
		props[f.name] = s
		if !f.optional {
			required = append(required, f.name)
		}
	}
	s := schema{"type": "object", "properties": props}
	if len(required) > 0 {
		s["required"] = required
	}
	return s, nil
}

func (g *generator) fieldSchema(f jsonField) (schema, error) {
	s, err := g.schemaOf(f.typ)
	if err != nil {
		return nil, err
	}
	if f.quoted {
		// ",string" writes numbers and booleans inside a JSON string.
		t, ptr := f.typ, false
		if t.Kind() == reflect.Pointer {
			t, ptr = t.Elem(), true
		}
		if t.Kind() == reflect.Bool || t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64 || isInteger(t.Kind()) {
			s = schema{"type": "string"}
			if ptr {
				s = nullable(s)
			}
		}
	}
	if f.enum != "" {
		if err := applyEnum(s, f.enum); err != nil {
			return nil, err
		}
	}
	if f.doc != "" {
		if d, ok := s["description"].(string); ok {
			s["description"] = f.doc + " " + d // keep e.g. the unit of a Duration
		} else {
			s["description"] = f.doc
		}
	}
	return s, nil
}

// nullable lets s also match null, as encoding/json writes a nil pointer.
func nullable(s schema) schema {
	switch typ := s["type"].(type) {
	case string:
		s["type"] = []any{typ, "null"}
		return s
	}
	if _, ok := s["$ref"]; ok {
		// type: [T, "null"] cannot widen a $ref target's type, so use a
		// union; anyOf stays valid whatever the target admits.
		return schema{"anyOf": []any{s, schema{"type": "null"}}}
	}
	return s // already nullable, or untyped and so matching null anyway
}

// applyEnum sets the values of an `enum:"a,b"` tag on a scalar schema, or on
// the items of an array schema, parsed as the schema's type.
func applyEnum(s schema, list string) error {
	target := s
	if typeOf(s) == "array" {
		items, ok := s["items"].(schema)
		if !ok {
			return errors.New("enum tag on an array without items")
		}
		target = items
	}
	typ := typeOf(target)
	var values []any
	for _, v := range strings.Split(list, ",") {
		v = strings.TrimSpace(v)
		switch typ {
		case "string":
			values = append(values, v)
		case "integer":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("enum value %q is not an integer", v)
			}
			values = append(values, n)
		case "number":
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("enum value %q is not a number", v)
			}
			values = append(values, n)
		default:
			return fmt.Errorf("enum tag needs a string, integer or number field, not %v", target["type"])
		}
	}
	if _, null := target["type"].([]any); null {
		values = append(values, nil)
	}
	target["enum"] = values
	return nil
}

// typeOf returns the non-null type of s, or "" if it has none.
func typeOf(s schema) string {
	switch typ := s["type"].(type) {
	case string:
		return typ
	case []any:
		if t, ok := typ[0].(string); ok {
			return t
		}
	}
	return ""
}

func implements(t, iface reflect.Type) bool {
	// encoding/json also uses pointer-receiver methods of addressable values.
	return t.Implements(iface) || reflect.PointerTo(t).Implements(iface)
}

func isInteger(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

// components names the component schemas and returns them by name. A type
// name used by one type only is kept; colliding names (and our own Problem)
// are qualified by package name, then numbered by package path and first
// encounter, which does not depend on map order.
func (g *generator) components() (map[string]any, error) {
	groups := map[string][]reflect.Type{}
	for _, t := range g.order {
		b := baseName(t)
		groups[b] = append(groups[b], t)
	}
	for base, ts := range groups {
		if len(ts) == 1 && base != problemName {
			g.refs[ts[0]].name = base
			continue
		}
		byPkg := map[string][]reflect.Type{}
		for _, t := range ts {
			q := sanitize(pkgName(t)) + "." + base
			byPkg[q] = append(byPkg[q], t)
		}
		for q, same := range byPkg {
			slices.SortStableFunc(same, func(a, b reflect.Type) int { return cmp.Compare(a.PkgPath(), b.PkgPath()) })
			for i, t := range same {
				g.refs[t].name = q
				if i > 0 {
					g.refs[t].name = q + "_" + strconv.Itoa(i+1)
				}
			}
		}
	}

	out := map[string]any{}
	for _, t := range g.order {
		name := g.refs[t].name
		if _, dup := out[name]; dup || name == problemName {
			return nil, fmt.Errorf("cannot give %s a unique schema name (%q is taken)", t, name)
		}
		out[name] = g.schemas[t]
	}
	return out, nil
}

// baseName is the type's name fit for a component key. Generic instances are
// named like "Page[example.com/x/store.Device]"; that becomes "Page_Device".
func baseName(t reflect.Type) string {
	parts := strings.FieldsFunc(t.Name(), func(c rune) bool {
		return !unicode.IsLetter(c) && !unicode.IsDigit(c) && !strings.ContainsRune("_./-~", c)
	})
	for i, p := range parts {
		p = p[strings.LastIndexByte(p, '/')+1:]
		parts[i] = p[strings.LastIndexByte(p, '.')+1:]
	}
	return sanitize(strings.Join(parts, "_"))
}

func pkgName(t reflect.Type) string {
	p := t.PkgPath()
	return p[strings.LastIndexByte(p, '/')+1:]
}

// sanitize keeps the characters OpenAPI allows in component keys.
func sanitize(s string) string {
	return strings.Map(func(c rune) rune {
		if c < 128 && (unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("._-", c)) {
			return c
		}
		return '_'
	}, s)
}

// jsonField is a struct field as encoding/json sees it.
type jsonField struct {
	name     string
	goName   string
	tagged   bool
	index    []int
	typ      reflect.Type
	optional bool // omitempty/omitzero, or promoted through an embedded pointer that may be nil
	quoted   bool
	doc      string
	enum     string
}

// jsonFields lists the fields encoding/json writes for struct type t, in
// encoding order. It follows encoding/json's typeFields: embedded structs
// without a name tag are flattened breadth-first, and of several fields with
// one name the shallowest wins, then a tagged one, and a tie hides them all.
func jsonFields(t reflect.Type) []jsonField {
	var fields []jsonField
	next := []jsonField{{typ: t}}
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	for len(next) > 0 {
		current := next
		next = nil
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, f := range current {
			if visited[f.typ] {
				continue
			}
			visited[f.typ] = true
			for i := range f.typ.NumField() {
				sf := f.typ.Field(i)
				if sf.Anonymous {
					et := sf.Type
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					// Unexported embedded structs still promote exported fields.
					if !sf.IsExported() && et.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if !isValidTag(name) {
					name = ""
				}
				index := append(slices.Clone(f.index), i)
				ft := sf.Type
				viaPtr := false
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft, viaPtr = ft.Elem(), true
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					optional := f.optional
					for _, o := range strings.Split(opts, ",") {
						optional = optional || o == "omitempty" || o == "omitzero"
					}
					field := jsonField{
						name:     cmp.Or(name, sf.Name),
						goName:   sf.Name,
						tagged:   name != "",
						index:    index,
						typ:      sf.Type,
						optional: optional,
						quoted:   slices.Contains(strings.Split(opts, ","), "string"),
						doc:      sf.Tag.Get("doc"),
						enum:     sf.Tag.Get("enum"),
					}
					fields = append(fields, field)
					if count[f.typ] > 1 {
						// The same struct embedded twice at one depth: a
						// duplicate makes the tie rule below drop the field.
						fields = append(fields, field)
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, jsonField{typ: ft, index: index, optional: f.optional || viaPtr})
				}
			}
		}
	}

	slices.SortFunc(fields, func(a, b jsonField) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.index), len(b.index)); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return 1
		}
		return slices.Compare(a.index, b.index)
	})
	var out []jsonField
	for i := 0; i < len(fields); {
		j := i + 1
		for j < len(fields) && fields[j].name == fields[i].name {
			j++
		}
		// fields[i] dominates unless the next one ties on depth and tagging.
		if j == i+1 || len(fields[i].index) < len(fields[i+1].index) || fields[i].tagged != fields[i+1].tagged {
			out = append(out, fields[i])
		}
		i = j
	}
	slices.SortFunc(out, func(a, b jsonField) int { return slices.Compare(a.index, b.index) })
	return out
}

// isValidTag mirrors encoding/json, which ignores names it would not accept.
func isValidTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c) && !unicode.IsLetter(c) && !unicode.IsDigit(c) {
			return false
		}
	}
	return true
}

package query

import (
	"database/sql"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// binder collects SQL arguments as $N placeholders.
type binder struct{ args []any }

func (b *binder) next(arg any) string {
	b.args = append(b.args, arg)
	return "$" + strconv.Itoa(len(b.args))
}

func TestSQLShape(t *testing.T) {
	day := 24 * time.Hour
	tagEq := func(value string) string {
		return "EXISTS (SELECT 1 FROM device_tags t WHERE t.device_id = d.id AND t.key = $1 AND t.value " + value + ")"
	}
	cases := []struct {
		q    string
		sql  string
		args []any
	}{
		{`(status in ("active", "quarantined") or not metered) and battery < 20 and last_seen_age > 7d`,
			`((d.status IN ($1, $2) OR NOT COALESCE(d.metered = $3, FALSE)) AND d.battery < $4 AND (d.last_seen IS NULL OR d.last_seen < $5))`,
			[]any{"active", "quarantined", true, int64(20), testNow.Add(-7 * day).UnixMicro()}},
		{`last_seen_age >= 1h`, `(d.last_seen IS NULL OR d.last_seen <= $1)`, []any{testNow.Add(-time.Hour).UnixMicro()}},
		{`last_seen_age < 7d`, `d.last_seen > $1`, []any{testNow.Add(-7 * day).UnixMicro()}},
		{`last_seen_age <= 7d`, `d.last_seen >= $1`, []any{testNow.Add(-7 * day).UnixMicro()}},
		{`version < "2.4.0"`, `d.version_key < $1`, []any{VersionKey("2.4.0")}},
		{`version in ("1.0", "v2")`, `d.version_key IN ($1, $2)`, []any{VersionKey("1.0"), VersionKey("2")}},
		{`battery != 20`, `(d.battery IS NULL OR d.battery <> $1)`, []any{int64(20)}},
		{`boots != 0`, `d.boots <> $1`, []any{int64(0)}},
		{`boots not in (1)`, `d.boots NOT IN ($1)`, []any{int64(1)}},
		{`serial not in ("a", "b")`, `(d.serial IS NULL OR d.serial NOT IN ($1, $2))`, []any{"a", "b"}},
		{`on_mains`, `d.on_mains = $1`, []any{true}},
		{`metered = false`, `d.metered = $1`, []any{false}},
		{`tag.region = "eu"`, tagEq("= $2"), []any{"region", "eu"}},
		{`tag.region != "eu"`, "NOT (" + tagEq("= $2") + ")", []any{"region", "eu"}},
		{`tag.region <= "eu"`, tagEq("<= $2"), []any{"region", "eu"}},
		{`tag.region in ("eu", "us")`, tagEq("IN ($2, $3)"), []any{"region", "eu", "us"}},
		{`tag.region not in ("eu")`, "NOT (" + tagEq("IN ($2)") + ")", []any{"region", "eu"}},
		{`product = "x" or not (on_mains and boots > 1)`,
			`(d.product = $1 OR NOT COALESCE((d.on_mains = $2 AND d.boots > $3), FALSE))`, []any{"x", true, int64(1)}},
	}
	for _, c := range cases {
		q, err := Parse(c.q, testSchema)
		if err != nil {
			t.Fatal(err)
		}
		var b binder
		got, err := q.SQL(testSchema, testNow, b.next)
		if err != nil {
			t.Fatalf("%s: %v", c.q, err)
		}
		if got != c.sql || !slices.Equal(b.args, c.args) {
			t.Errorf("%s:\n got %s %v\nwant %s %v", c.q, got, b.args, c.sql, c.args)
		}
	}
}

func TestSQLChecksTheSchema(t *testing.T) {
	q, err := Parse(`product = "a" and battery < 3 and tag.region = "eu"`, testSchema)
	if err != nil {
		t.Fatal(err)
	}
	without := func(edit func(s *Schema)) Schema {
		s := testSchema
		s.Fields = maps.Clone(testSchema.Fields)
		edit(&s)
		return s
	}
	cases := []struct {
		name   string
		s      Schema
		offset int
		msg    string
	}{
		{"field gone", without(func(s *Schema) { delete(s.Fields, "battery") }), 18, "field battery differs from the schema"},
		{"kind changed", without(func(s *Schema) { s.Fields["product"] = Field{Name: "product", Kind: Version, Column: "x"} }), 0, "field product differs"},
		{"nullable changed", without(func(s *Schema) { s.Fields["battery"] = Field{Name: "battery", Kind: Int, Column: "x"} }), 18, "field battery differs"},
		{"no TagSQL", without(func(s *Schema) { s.TagSQL = nil }), 34, "need a schema with TagSQL"},
	}
	for _, c := range cases {
		_, err := q.SQL(c.s, testNow, new(binder).next)
		var qe *Error
		if !errors.As(err, &qe) || qe.Offset != c.offset || !strings.Contains(qe.Msg, c.msg) {
			t.Errorf("%s: got %v, want at byte %d: %s", c.name, err, c.offset, c.msg)
		}
	}
	// Another Column for the same field is fine: a different table alias, say.
	s := without(func(s *Schema) { s.Fields["product"] = Field{Name: "product", Kind: String, Column: "x.product"} })
	if got, err := q.SQL(s, testNow, new(binder).next); err != nil || !strings.HasPrefix(got, "(x.product = $1") {
		t.Errorf("renamed column: %s, %v", got, err)
	}
}

// device is a sample record, stored in SQLite for the agreement test.
type device struct {
	id              int
	product, status string
	serial, version *string
	battery, boots  *int64 // boots is NULL in one row though the schema says it cannot be
	metered         *bool
	onMains         bool
	lastSeen        time.Time // zero: never
	tags            map[string]string
}

func optional[T any](p *T) (any, bool) {
	if p == nil {
		return nil, false
	}
	return *p, true
}

func (d device) Field(name string) (any, bool) {
	switch name {
	case "product":
		return d.product, true
	case "status":
		return d.status, true
	case "serial":
		return optional(d.serial)
	case "version":
		return optional(d.version)
	case "battery":
		return optional(d.battery)
	case "boots":
		return optional(d.boots)
	case "metered":
		return optional(d.metered)
	case "on_mains":
		return d.onMains, true
	case "last_seen_age":
		return d.lastSeen, true
	}
	return nil, false
}

func (d device) Tag(key string) (string, bool) {
	v, ok := d.tags[key]
	return v, ok
}

func sampleDevices() []device {
	day := 24 * time.Hour
	return []device{
		{1, "gw-100", "active", new("A1"), new("2.3.9"), new(int64(15)), new(int64(3)), new(true), false, testNow.Add(-8 * day), map[string]string{"region": "eu", "hw-rev": "b"}},
		{2, "gw-100", "quarantined", nil, new("2.4.0-rc.1"), new(int64(20)), new(int64(0)), new(false), true, testNow.Add(-7 * day), map[string]string{"region": "us"}},
		{3, "gw-200", "active", new(""), new("2.4.0"), nil, new(int64(10)), nil, false, time.Time{}, nil},
		{4, "gw-100", "decommissioned", new(`B"2`), new("v2.10.0+build.7"), new(int64(100)), new(int64(-1)), new(true), true, testNow.Add(-time.Hour), map[string]string{"region": "eu-west", "a.b": "x"}},
		{5, "sensor", "active", new("a"), nil, new(int64(0)), nil, new(false), false, testNow.Add(-7*day + time.Microsecond), map[string]string{"region": ""}},
		{6, "gw-100", "pending", new("z"), new("1.0~beta"), new(int64(21)), new(int64(2)), nil, true, testNow.Add(time.Hour), map[string]string{"hw-rev": "a"}},
		{7, "gw-200", "active", new("A1"), new("2.4"), new(int64(19)), new(int64(5)), new(true), false, testNow.Add(-7*day - 500*time.Nanosecond), map[string]string{"region": "EU"}},
		{8, "gw", "active", nil, new("2.4.0"), new(int64(20)), new(int64(0)), new(false), true, testNow.Add(-7*day - time.Microsecond), map[string]string{"region": "eu", "hw-rev": "b"}},
	}
}

func openSampleDB(t *testing.T, devices []device) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1) // every connection to :memory: is a database of its own
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE devices (id INTEGER PRIMARY KEY, product TEXT NOT NULL, status TEXT NOT NULL,
		serial TEXT, version_key TEXT, battery INTEGER, boots INTEGER, metered BOOLEAN,
		on_mains BOOLEAN NOT NULL, last_seen INTEGER)`)
	exec(`CREATE TABLE device_tags (device_id INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (device_id, key))`)
	for _, d := range devices {
		var versionKey, lastSeen any
		if d.version != nil {
			versionKey = VersionKey(*d.version)
		}
		if !d.lastSeen.IsZero() {
			lastSeen = d.lastSeen.UnixMicro()
		}
		serial, _ := optional(d.serial)
		battery, _ := optional(d.battery)
		boots, _ := optional(d.boots)
		metered, _ := optional(d.metered)
		exec(`INSERT INTO devices VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			d.id, d.product, d.status, serial, versionKey, battery, boots, metered, d.onMains, lastSeen)
		for k, v := range d.tags {
			exec(`INSERT INTO device_tags VALUES ($1, $2, $3)`, d.id, k, v)
		}
	}
	return db
}

// randomQuery builds a valid query over testSchema from values the sample
// devices hold or sit next to.
func randomQuery(r *rand.Rand, depth int) string {
	if depth > 0 {
		switch r.IntN(5) {
		case 0:
			return "not (" + randomQuery(r, depth-1) + ")"
		case 1:
			return "(" + randomQuery(r, depth-1) + ") and (" + randomQuery(r, depth-1) + ")"
		case 2:
			return "(" + randomQuery(r, depth-1) + ") or (" + randomQuery(r, depth-1) + ")"
		}
	}
	pick := func(vs ...string) string { return vs[r.IntN(len(vs))] }
	strs := []string{`"gw-100"`, `"gw-200"`, `"gw"`, `"sensor"`, `"active"`, `"pending"`, `"A1"`, `""`, `"a"`, `"z"`, `"B\"2"`}
	versions := []string{`"2.4.0"`, `"2.4"`, `"2.3.9"`, `"2.4.0-rc.1"`, `"v2.10"`, `"1.0"`, `"1.0~beta"`, `"2.10.0+x"`}
	ints := []string{"-1", "0", "3", "15", "19", "20", "21", "100"}
	tagValues := []string{`"eu"`, `"us"`, `"eu-west"`, `""`, `"EU"`, `"a"`, `"b"`, `"x"`}
	ops := []string{"=", "!=", "<", "<=", ">", ">=", "in", "not in"}
	cond := func(field string, values []string, ops []string) string {
		op := pick(ops...)
		if op == "in" || op == "not in" {
			list := make([]string, 1+r.IntN(3))
			for i := range list {
				list[i] = pick(values...)
			}
			return field + " " + op + " (" + strings.Join(list, ", ") + ")"
		}
		return field + " " + op + " " + pick(values...)
	}
	switch r.IntN(7) {
	case 0:
		return cond(pick("product", "status", "serial"), strs, ops)
	case 1:
		return cond("version", versions, ops)
	case 2:
		return cond(pick("battery", "boots"), ints, ops)
	case 3:
		if r.IntN(2) == 0 {
			return pick("metered", "on_mains")
		}
		return cond(pick("metered", "on_mains"), []string{"true", "false"}, []string{"=", "!=", "in", "not in"})
	case 4:
		return cond("last_seen_age", []string{"7d", "168h", "10080m", "8d", "1h", "0s"}, []string{"<", "<=", ">", ">="})
	}
	return cond(pick("tag.region", "tag.hw-rev", "tag.a.b", "tag.missing"), tagValues, ops)
}

// TestMatchAgreesWithSQLite is the contract between the two evaluators:
// for every query, the devices SQLite selects with the compiled SQL are
// exactly the devices Match accepts.
func TestMatchAgreesWithSQLite(t *testing.T) {
	devices := sampleDevices()
	db := openSampleDB(t, devices)
	queries := []string{
		`product = "gw-100" and tag.region = "eu" and version < "2.4.0"`,
		`(status in ("active", "quarantined") or not metered) and battery < 20 and last_seen_age > 7d`,
		`last_seen_age > 7d`, `last_seen_age >= 7d`, `last_seen_age < 7d`, `last_seen_age <= 7d`,
		`not last_seen_age > 7d`, `last_seen_age < 0s`,
		`battery != 20`, `not battery = 20`, `not battery < 20`, `battery not in (20, 21)`, `battery in (0, 100)`,
		`boots != 0`, `not boots > 0`, `boots >= -1`,
		`serial != "a"`, `serial = ""`, `serial > ""`, `serial not in ("A1", "z")`, `serial = "B\"2"`,
		`metered`, `not metered`, `metered = false`, `metered != true`, `metered not in (false)`,
		`not (metered or on_mains)`, `on_mains and not metered`,
		`version >= "2.4"`, `version = "2.4.0"`, `version in ("v2.10", "1.0~beta")`, `version != "2.4.0"`,
		`version < "2.4.0"`, `not version < "2.4.0"`, `version > "2.4.0-rc"`, `version = "2.10.0"`,
		`tag.region = "eu"`, `tag.region != "eu"`, `tag.region < "f"`, `tag.region in ("eu", "us")`,
		`tag.region not in ("eu", "")`, `not tag.region = "eu"`, `tag.missing != "x"`, `tag.a.b = "x"`,
		`tag.region >= ""`, `not tag.region >= ""`,
		`status = "active" or battery < 20 and not metered`,
		`not (battery < 20 or serial = "a") and not not metered`,
	}
	r := rand.New(rand.NewPCG(7, 11))
	for range 600 {
		queries = append(queries, randomQuery(r, 3))
	}
	informative := 0 // queries that select some devices but not all
	for _, src := range queries {
		q, err := Parse(src, testSchema)
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		var b binder
		cond, err := q.SQL(testSchema, testNow, b.next)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		rows, err := db.Query("SELECT d.id FROM devices d WHERE "+cond+" ORDER BY d.id", b.args...)
		if err != nil {
			t.Fatalf("%s\n%s: %v", src, cond, err)
		}
		var fromSQL []int
		for rows.Next() {
			var id int
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			fromSQL = append(fromSQL, id)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		var fromMatch []int
		for _, d := range devices {
			if q.Match(d, testNow) {
				fromMatch = append(fromMatch, d.id)
			}
		}
		if !slices.Equal(fromSQL, fromMatch) {
			t.Errorf("%s\nSQL %s %v\nselects %v, Match accepts %v", src, cond, b.args, fromSQL, fromMatch)
		}
		if len(fromMatch) > 0 && len(fromMatch) < len(devices) {
			informative++
		}
	}
	if informative < len(queries)/2 {
		t.Errorf("only %d of %d queries tell devices apart; the sample is too uniform to test much", informative, len(queries))
	}
}

type recordMap map[string]any

func (m recordMap) Field(name string) (any, bool) {
	v, ok := m[name]
	return v, ok
}

func (m recordMap) Tag(string) (string, bool) { return "", false }

func TestMatchTreatsWrongTypesAsNull(t *testing.T) {
	r := recordMap{"battery": 5, "serial": []byte("a"), "last_seen_age": testNow.UnixMicro()}
	for src, want := range map[string]bool{
		`battery < 20`:       false, // an int, not an int64
		`battery != 20`:      true,
		`serial = "a"`:       false,
		`serial != "a"`:      true,
		`last_seen_age > 1h`: true, // not a time.Time: never seen
	} {
		q, err := Parse(src, testSchema)
		if err != nil {
			t.Fatal(err)
		}
		if got := q.Match(r, testNow); got != want {
			t.Errorf("%s: Match = %v, want %v", src, got, want)
		}
	}
}

func TestAgeBoundary(t *testing.T) {
	exactly := device{lastSeen: testNow.Add(-7 * 24 * time.Hour)}
	for src, want := range map[string]bool{
		`last_seen_age > 7d`: false, `last_seen_age >= 7d`: true,
		`last_seen_age < 7d`: false, `last_seen_age <= 7d`: true,
	} {
		q, err := Parse(src, testSchema)
		if err != nil {
			t.Fatal(err)
		}
		if got := q.Match(exactly, testNow); got != want {
			t.Errorf("a device seen exactly 7d ago: %s = %v, want %v", src, got, want)
		}
	}
}

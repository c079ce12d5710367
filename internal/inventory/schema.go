package inventory

import "github.com/steward-iot/steward/internal/inventory/query"

// Schema is the fleet-query vocabulary over devices. Columns name the
// store's device listing aliases: d for devices, p for products.
var Schema = query.Schema{
	Fields: fields(
		query.Field{Name: "product", Kind: query.String, Column: "p.slug"},
		query.Field{Name: "hardware_id", Kind: query.String, Column: "p.hardware_id"},
		query.Field{Name: "status", Kind: query.String, Column: "d.status"},
		query.Field{Name: "serial", Kind: query.String, Column: "d.serial"},
		query.Field{Name: "version", Kind: query.Version, Column: "d.installed_version_key", Nullable: true},
		query.Field{Name: "battery", Kind: query.Int, Column: "d.battery_percent", Nullable: true},
		query.Field{Name: "on_mains", Kind: query.Bool, Column: "d.on_mains"},
		query.Field{Name: "link", Kind: query.String, Column: "d.link"},
		query.Field{Name: "metered", Kind: query.Bool, Column: "d.metered"},
		query.Field{Name: "free_storage", Kind: query.Int, Column: "d.free_storage"},
		query.Field{Name: "last_seen_age", Kind: query.Age, Column: "d.last_seen_at", Nullable: true},
		query.Field{Name: "enrolled_age", Kind: query.Age, Column: "d.created_at"},
	),
	TagPrefix: "tag.",
	TagSQL: func(keyPH, op, valuePH string) string {
		return "EXISTS (SELECT 1 FROM device_tags t WHERE t.device_id = d.id AND t.key = " + keyPH + " AND t.value " + op + " " + valuePH + ")"
	},
}

func fields(fs ...query.Field) map[string]query.Field {
	m := make(map[string]query.Field, len(fs))
	for _, f := range fs {
		m[f.Name] = f
	}
	return m
}

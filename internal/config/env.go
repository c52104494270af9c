package config

// This file applies environment overrides: each key's name in upper case,
// lists comma-separated, POLICY as base64 YAML.

import (
	"encoding/base64"
	"reflect"
	"strings"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/policy"
)

// applyEnv overrides keys from the environment: each key's name in upper
// case. Empty variables count as unset, as in Pomerium (viper).
func (d *decoder) applyEnv(c *Config, set map[string]bool, lookupEnv func(string) (string, bool)) {
	if lookupEnv == nil {
		return
	}
	v := reflect.ValueOf(c).Elem()
	for _, f := range configFields.list {
		name := strings.ToUpper(f.key)
		val, ok := lookupEnv(name)
		if !ok || strings.TrimSpace(val) == "" {
			continue
		}
		d.forget(f.key)
		d.where[f.key] = pos{file: "env", key: name}
		fv := v.FieldByIndex(f.index)
		fv.Set(reflect.Zero(fv.Type()))
		set[f.key] = true
		d.decodeEnv(fv, val, f.key, name)
	}
}

func (d *decoder) decodeEnv(v reflect.Value, val, path, name string) {
	if path == claimHeadersKey {
		d.claimHeaders = claimHeadersFromList(splitClaims(val))
		return
	}
	switch v.Type() {
	case durationType:
		dur, err := parseDuration(val)
		if err != nil {
			d.atPath(path, err.Error())
			return
		}
		v.SetInt(int64(dur))
		return
	case routeSpecsType:
		v.Set(reflect.ValueOf(d.decodeEnvPolicy(val, name)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(strings.TrimSpace(val))
	case reflect.Pointer, reflect.Bool:
		b, err := parseBool(val)
		if err != nil {
			d.atPath(path, err.Error())
			return
		}
		if v.Kind() == reflect.Bool {
			v.SetBool(b)
		} else {
			v.Set(reflect.ValueOf(&b))
		}
	case reflect.Slice:
		v.Set(reflect.ValueOf(identity.SplitList(val)).Convert(v.Type()))
	default:
		d.atPath(path, "cannot be set from the environment")
	}
}

// decodeEnvPolicy reads POLICY: base64 of a YAML list of routes. Problems in
// it are located by line and column in the decoded YAML, with file "env" and
// keys "POLICY[i].field".
func (d *decoder) decodeEnvPolicy(val, name string) []policy.RouteSpec {
	val = strings.TrimSpace(val)
	data, err := base64.StdEncoding.DecodeString(val)
	if err != nil {
		data, err = base64.RawStdEncoding.DecodeString(val)
	}
	if err != nil {
		d.atPath(strings.ToLower(name), "must be base64 of a YAML list of routes; it is not valid base64")
		return nil
	}
	if len(data) > MaxSize {
		d.atPath(strings.ToLower(name), "decodes to more than 4 MiB")
		return nil
	}
	saved := d.file
	d.file = "env"
	defer func() { d.file = saved }()
	root := d.parseYAML(data, name)
	if root == nil || isNull(root) {
		return nil
	}
	return d.decodeRoutes(root, name)
}

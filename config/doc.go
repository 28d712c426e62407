// Package config is Surge's typed configuration: defaults, a JSON file, the
// environment and command-line flags, in that order of precedence (flags
// win), then validation with errors that name the setting.
//
// It uses the standard library only (DESIGN.md): every setting is a field
// of Config with a `key` tag ("login.provider"); its environment variable is
// SURGE_ plus the key upper-cased with '.' as '_' (SURGE_LOGIN_PROVIDER),
// and the flag layer uses the same keys.
package config

//go:build assets

// Package assets pins the modules named in go.mod: the build tag keeps it out of every
// build, while `go mod tidy` keeps the pins and their checksums.
package assets

import _ "istio.io/api/networking/v1"

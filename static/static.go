// Package static embeds the portal's CSS and its small progressive-enhancement scripts, so
// the binary serves them with no files beside it.
package static

import "embed"

// FS holds the files under static/.
//
//go:embed *.css *.js
var FS embed.FS

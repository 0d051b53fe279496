// Package static embeds the portal's CSS (and, later, its small scripts), so
// the binary serves them with no files beside it.
package static

import "embed"

// FS holds the files under static/.
//
//go:embed *.css
var FS embed.FS

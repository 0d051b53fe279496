package views

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/a-h/templ"
	"github.com/boombuler/barcode/qr"
)

// QRCode draws text as an inline SVG QR code, so enrolment needs neither
// JavaScript nor an image endpoint that would hold the secret in a URL.
func QRCode(text string) templ.Component {
	return templ.ComponentFunc(func(ctx context.Context, w io.Writer) error {
		code, err := qr.Encode(text, qr.M, qr.Auto)
		if err != nil {
			return err
		}
		n := code.Bounds().Dx()
		const quiet = 4
		var sb strings.Builder
		fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="220" height="220" role="img" aria-label="QR code for your authenticator app" shape-rendering="crispEdges"><rect width="100%%" height="100%%" fill="#fff"/><path fill="#000" d="`, n+2*quiet, n+2*quiet)
		for y := 0; y < n; y++ {
			for x := 0; x < n; x++ {
				if r, _, _, _ := code.At(x, y).RGBA(); r == 0 {
					fmt.Fprintf(&sb, "M%d %dh1v1h-1z", x+quiet, y+quiet)
				}
			}
		}
		sb.WriteString(`"/></svg>`)
		_, err = io.WriteString(w, sb.String())
		return err
	})
}

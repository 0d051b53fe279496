// Package mail sends the few messages Keyward mails: invitation links. A
// Sender is optional everywhere: without one, links are only shown. It
// must not import echo.
package mail

import "context"

// Message is one plain-text mail.
type Message struct {
	To      string
	Subject string
	Text    string
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

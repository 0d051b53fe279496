// Package views holds the portal's templ pages. Every page takes the shared
// Meta plus its own props; no page ever receives a database row that holds a
// secret.
package views

// Meta is what every page needs: title, CSRF token, who is signed in.
type Meta struct {
	Title string
	CSRF  string
	User  *User // nil before sign-in is complete
	// Nav marks the active navigation entry.
	Nav string
	// Flash is the confirmation of the POST that led here, shown once.
	Flash string
}

// User is the signed-in user as pages show them.
type User struct {
	Email  string
	Role   string
	Tenant string
}

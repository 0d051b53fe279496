package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"keyward/web"
	"keyward/web/api"
	"keyward/web/errs"
	"keyward/web/portal"
	"keyward/web/webtest"
)

// httpMethods are the operation keys of an OpenAPI path item.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// operation is one method of one path of the document.
type operation struct {
	method, path string
	op           map[string]any
	item         map[string]any
}

func (o operation) String() string { return o.method + " " + o.path }

// openAPIFile is openapi.json as the package embeds it; TestOpenAPIServed
// checks that the route serves exactly this.
func openAPIFile(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodedOpenAPI parses the document generically.
func decodedOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openAPIFile(t), &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	return doc
}

// documentedOperations lists every operation under paths.
func documentedOperations(t *testing.T, doc map[string]any) []operation {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatalf("openapi.json: paths is %T, want an object", doc["paths"])
	}
	var ops []operation
	for path, v := range paths {
		item, ok := v.(map[string]any)
		if !ok {
			t.Errorf("openapi.json: paths[%q] is %T, want an object", path, v)
			continue
		}
		for _, m := range httpMethods {
			if raw, found := item[m]; found {
				op, ok := raw.(map[string]any)
				if !ok {
					t.Errorf("openapi.json: %s %s is %T, want an object", strings.ToUpper(m), path, raw)
					continue
				}
				ops = append(ops, operation{method: strings.ToUpper(m), path: path, op: op, item: item})
			}
		}
	}
	slices.SortFunc(ops, func(a, b operation) int { return strings.Compare(a.String(), b.String()) })
	return ops
}

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// registeredRoutes lists the routes under /api/v1 as "METHOD
// /path/{param}": the public API's and the portal's console routes, as the
// application's router mounts them (routing needs no database).
func registeredRoutes(t *testing.T) map[string]bool {
	t.Helper()
	e := web.New(web.Config{Logger: slog.New(slog.DiscardHandler)}, nil, &portal.Handler{}, &api.Handler{})
	routes := map[string]bool{}
	for _, r := range e.Routes() {
		if r.Method == echo.RouteNotFound || !strings.HasPrefix(r.Path, api.Prefix+"/") {
			continue
		}
		if r.Method == http.MethodHead {
			continue // each GET route's twin, which the document's description names once
		}
		routes[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	return routes
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := decodedOpenAPI(t)
	if v, _ := doc["openapi"].(string); v != "3.1.0" {
		t.Errorf("openapi = %#v, want \"3.1.0\"", doc["openapi"])
	}

	routes := registeredRoutes(t)
	for _, want := range []string{"GET " + api.Prefix + "/key", "GET " + api.Prefix + "/orgs/api-key"} {
		if !routes[want] {
			t.Fatalf("the router has no %s: found only %v", want, slices.Sorted(maps.Keys(routes)))
		}
	}
	ops := documentedOperations(t, doc)
	documented := map[string]bool{}
	for _, o := range ops {
		documented[o.String()] = true
	}
	for _, r := range slices.Sorted(maps.Keys(routes)) {
		if !documented[r] {
			t.Errorf("route %s is registered but missing from openapi.json", r)
		}
	}
	for _, o := range slices.Sorted(maps.Keys(documented)) {
		if !routes[o] {
			t.Errorf("openapi.json documents %s, which is not a registered route", o)
		}
	}

	ids := map[string]string{}
	for _, o := range ops {
		id, _ := o.op["operationId"].(string)
		switch {
		case id == "":
			t.Errorf("%s has no operationId", o)
		case ids[id] != "":
			t.Errorf("%s and %s share the operationId %q", ids[id], o, id)
		default:
			ids[id] = o.String()
		}
		responses, _ := o.op["responses"].(map[string]any)
		if !slices.ContainsFunc(slices.Collect(maps.Keys(responses)), isSuccessStatus) {
			t.Errorf("%s documents no 2xx response (responses: %v)", o, slices.Sorted(maps.Keys(responses)))
		}
		checkPathParameters(t, doc, o)
	}

	refs := 0
	walkRefs(doc, "#", func(at, ref string) {
		refs++
		if !strings.HasPrefix(ref, "#/components/") {
			t.Errorf("%s: $ref %q does not point under #/components/", at, ref)
			return
		}
		if _, err := resolvePointer(doc, ref); err != nil {
			t.Errorf("%s: $ref %q does not resolve: %v", at, ref, err)
		}
	})
	if refs == 0 {
		t.Error("openapi.json has no $ref at all: the shared components are not used")
	}
}

// TestOpenAPIErrorCodes checks that the ErrorCode enum lists exactly the
// stable codes declared in web/errs.
func TestOpenAPIErrorCodes(t *testing.T) {
	doc := decodedOpenAPI(t)
	enum, err := resolvePointer(doc, "#/components/schemas/ErrorCode/enum")
	if err != nil {
		t.Fatalf("ErrorCode enum: %v", err)
	}
	values, ok := enum.([]any)
	if !ok {
		t.Fatalf("ErrorCode enum is %T, want an array", enum)
	}
	documented := map[string]bool{}
	for _, v := range values {
		s, _ := v.(string)
		documented[s] = true
	}

	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../errs/errs.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !strings.HasPrefix(name.Name, "Code") || !ok || lit.Kind != token.STRING {
					continue
				}
				code, _ := strconv.Unquote(lit.Value)
				declared[code] = true
			}
		}
	}
	if !declared[errs.CodeUnauthorized] || !declared[errs.CodeIdempotencyReused] {
		t.Fatalf("read only %v from ../errs/errs.go: the parse missed the codes", slices.Sorted(maps.Keys(declared)))
	}
	for _, c := range slices.Sorted(maps.Keys(declared)) {
		if !documented[c] {
			t.Errorf("error code %s is declared in web/errs but missing from the ErrorCode enum", c)
		}
	}
	for _, c := range slices.Sorted(maps.Keys(documented)) {
		if !declared[c] {
			t.Errorf("ErrorCode enum lists %q, which web/errs does not declare", c)
		}
	}
}

// TestOpenAPISecurityMatchesAuth sends each documented operation to the
// application without credentials: an operation documented as open must
// not answer 401, and every other one must answer 401 and document it.
// The public API's operations take either key scheme; the console's take
// the portal session, and its writes the CSRF header as well (sent here,
// so that the session is what the request lacks).
func TestOpenAPISecurityMatchesAuth(t *testing.T) {
	doc := decodedOpenAPI(t)
	schemes, _ := resolvePointer(doc, "#/components/securitySchemes")
	if s, _ := schemes.(map[string]any); s["bearerAuth"] == nil || s["apiKeyHeader"] == nil || s["consoleSession"] == nil {
		t.Fatalf("securitySchemes = %v, want bearerAuth, apiKeyHeader and consoleSession", schemes)
	}
	f := webtest.New(t)
	anon := f.Client()
	if anon.Get("/login"); anon.CSRF == "" {
		t.Fatal("the sign-in page gave no CSRF token")
	}

	for _, o := range documentedOperations(t, doc) {
		sec, declared := o.op["security"].([]any)
		if !declared {
			t.Errorf("%s declares no security of its own", o)
			continue
		}
		console := strings.HasPrefix(o.path, api.Prefix+"/orgs/")
		write := o.method != http.MethodGet
		if console {
			checkCSRFParameter(t, doc, o, write)
		}
		path := strings.ReplaceAll(o.path, "{id}", "0197a3c2-5f1e-7b40-9c8d-2e6f4a1b3c5d")
		var r webtest.Response
		if console {
			req, _ := http.NewRequest(o.method, f.Server.URL+path, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-CSRF-Token", anon.CSRF)
			r = anon.Do(req)
		} else {
			r = f.API(o.method, path, "", "")
		}
		if len(sec) == 0 {
			if r.Status == http.StatusUnauthorized {
				t.Errorf("%s is documented without security but answers 401 without credentials", o)
			}
			continue
		}
		if r.Status != http.StatusUnauthorized {
			t.Errorf("%s without credentials: status %d, want 401 (body %.200s)", o, r.Status, r.Body)
		}
		var names []string
		for _, req := range sec {
			for name := range req.(map[string]any) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		want := []string{"apiKeyHeader", "bearerAuth"}
		if console {
			want = []string{"consoleSession"}
		}
		if !slices.Equal(names, want) {
			t.Errorf("%s security alternatives = %v, want %v", o, names, want)
		}
		if responses, _ := o.op["responses"].(map[string]any); responses["401"] == nil {
			t.Errorf("%s needs credentials but documents no 401 response", o)
		}
	}
}

// checkCSRFParameter requires a console write to declare the X-CSRF-Token
// header as a required parameter, and a read not to.
func checkCSRFParameter(t *testing.T, doc map[string]any, o operation, write bool) {
	t.Helper()
	var found, required bool
	for _, list := range []any{o.item["parameters"], o.op["parameters"]} {
		params, _ := list.([]any)
		for _, p := range params {
			pm, _ := p.(map[string]any)
			if ref, ok := pm["$ref"].(string); ok {
				r, err := resolvePointer(doc, ref)
				if err != nil {
					continue // reported by the $ref walk
				}
				pm, _ = r.(map[string]any)
			}
			if pm["in"] == "header" && strings.EqualFold(pm["name"].(string), "X-CSRF-Token") {
				found, required = true, pm["required"] == true
			}
		}
	}
	switch {
	case write && (!found || !required):
		t.Errorf("%s is a console write but does not require the X-CSRF-Token header", o)
	case !write && found:
		t.Errorf("%s is a console read but declares the X-CSRF-Token header, which reads do not need", o)
	}
}

func TestOpenAPIServed(t *testing.T) {
	e := echo.New()
	(&api.Handler{}).Register(e)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, api.Prefix+"/openapi.json", nil)
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s/openapi.json: status %d, want 200", api.Prefix, rec.Code)
	}
	webtest.Check(t, webtest.Exchange{Request: req, Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()})
	if ct := rec.Header().Get(echo.HeaderContentType); ct != echo.MIMEApplicationJSON {
		t.Errorf("Content-Type = %q, want %q", ct, echo.MIMEApplicationJSON)
	}
	file := openAPIFile(t)
	if len(file) == 0 {
		t.Fatal("openapi.json is empty")
	}
	if !bytes.Equal(rec.Body.Bytes(), file) {
		t.Errorf("body (%d bytes) differs from openapi.json (%d bytes)", rec.Body.Len(), len(file))
	}
}

// checkPathParameters requires every {param} of o's path to be declared as
// a required path parameter of the operation or its path item, and no
// other path parameter.
func checkPathParameters(t *testing.T, doc map[string]any, o operation) {
	t.Helper()
	want := map[string]bool{}
	for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(o.path, -1) {
		want[m[1]] = true
	}
	got := map[string]bool{}
	for _, list := range []any{o.item["parameters"], o.op["parameters"]} {
		params, _ := list.([]any)
		for _, p := range params {
			pm, _ := p.(map[string]any)
			if ref, ok := pm["$ref"].(string); ok {
				r, err := resolvePointer(doc, ref)
				if err != nil {
					continue // reported by the $ref walk
				}
				pm, _ = r.(map[string]any)
			}
			if pm["in"] != "path" {
				continue
			}
			name, _ := pm["name"].(string)
			if pm["required"] != true {
				t.Errorf("%s: path parameter %q is not required", o, name)
			}
			got[name] = true
		}
	}
	for n := range want {
		if !got[n] {
			t.Errorf("%s: path parameter {%s} is not declared", o, n)
		}
	}
	for n := range got {
		if !want[n] {
			t.Errorf("%s: declares path parameter %q, which is not in the path", o, n)
		}
	}
}

func isSuccessStatus(code string) bool {
	if code == "2XX" {
		return true
	}
	n, err := strconv.Atoi(code)
	return err == nil && n >= 200 && n <= 299
}

// walkRefs calls fn for every "$ref" string anywhere in v; at is a JSON
// pointer to where it was found.
func walkRefs(v any, at string, fn func(at, ref string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			if s, ok := child.(string); ok && k == "$ref" {
				fn(at, s)
				continue
			}
			walkRefs(child, at+"/"+escapePointer(k), fn)
		}
	case []any:
		for i, child := range x {
			walkRefs(child, at+"/"+strconv.Itoa(i), fn)
		}
	}
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// resolvePointer follows a local JSON pointer ("#/a/b") through doc.
func resolvePointer(doc map[string]any, ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, errors.New("not a local JSON pointer")
	}
	var cur any = doc
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch x := cur.(type) {
		case map[string]any:
			next, found := x[tok]
			if !found {
				return nil, errors.New("no member " + strconv.Quote(tok))
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil, errors.New("no element " + strconv.Quote(tok))
			}
			cur = x[i]
		default:
			return nil, errors.New("cannot descend into a scalar at " + strconv.Quote(tok))
		}
	}
	return cur, nil
}

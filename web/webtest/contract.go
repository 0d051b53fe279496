package webtest

// The contract check: every exchange a test has with a path under /api/v1
// is held against the OpenAPI document the application serves, so the
// document cannot drift from what the server does without a test failing.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"

	"keyward/web/api"
)

// contract is the parsed document and its router, built once per test
// binary: loading and validating the document is far dearer than checking
// one exchange.
var contract struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
}

// loadContract parses the document exactly as GET /api/v1/openapi.json
// serves it (the route answers without a database, so a bare router will
// do), checks that it is a valid OpenAPI document and builds its router.
// The document says "openapi": "3.1.x"; kin-openapi reads that and applies
// JSON Schema 2020-12 to its schemas by itself, with no loader option.
func loadContract() (*openapi3.T, routers.Router, error) {
	contract.once.Do(func() {
		e := echo.New()
		(&api.Handler{}).Register(e)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, api.Prefix+"/openapi.json", nil))
		if rec.Code != http.StatusOK {
			contract.err = fmt.Errorf("GET %s/openapi.json answered %d", api.Prefix, rec.Code)
			return
		}
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(rec.Body.Bytes())
		if err != nil {
			contract.err = fmt.Errorf("loading openapi.json: %w", err)
			return
		}
		if !doc.IsOpenAPI31OrLater() {
			contract.err = fmt.Errorf("openapi.json is OpenAPI %s, want 3.1 or later", doc.OpenAPI)
			return
		}
		if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
			contract.err = fmt.Errorf("openapi.json is not a valid OpenAPI document: %w", err)
			return
		}
		router, err := gorillamux.NewRouter(doc)
		if err != nil {
			contract.err = fmt.Errorf("routing openapi.json: %w", err)
			return
		}
		contract.doc, contract.router = doc, router
	})
	return contract.doc, contract.router, contract.err
}

// formats asserts the formats the document uses beyond those kin-openapi
// asserts by itself (date-time, among others), so that "format": "uuid"
// is a promise too and not a remark.
var formats = []openapi3.SchemaValidationOption{
	openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)),
}

// UnderContract reports whether the OpenAPI document governs path: the
// public API and the portal's console routes, everything under /api/v1.
func UnderContract(path string) bool {
	return path == api.Prefix || strings.HasPrefix(path, api.Prefix+"/")
}

// Exchange is one request and the response to it.
type Exchange struct {
	// Request gives the method, URL and headers; its Body is not read.
	Request     *http.Request
	RequestBody []byte
	Status      int
	Header      http.Header
	Body        []byte
}

func (x Exchange) String() string {
	return fmt.Sprintf("%s %s → %d", x.Request.Method, x.Request.URL.RequestURI(), x.Status)
}

// CheckExchange holds one exchange against the OpenAPI document and
// returns every disagreement, or nil. The rule:
//
//   - The response is always checked: its status must be documented for the
//     operation (an undocumented one fails, as does a redirect), its
//     documented headers must be present when required and well formed, and
//     its JSON body must match the schema of that status.
//   - The request is checked too (parameters, body, and that it carries the
//     credential a security scheme names: see presentCredential). Tests
//     send invalid requests on purpose, to see them refused; so a request
//     that fails the check is reported only when the server answered it
//     with a 2xx. A server that accepts what the document forbids is a real
//     disagreement; one that refuses it is the document's promise kept.
//   - A request that matches no documented operation must be refused (4xx
//     or 5xx) with the error envelope.
func CheckExchange(x Exchange) error {
	doc, router, err := loadContract()
	if err != nil {
		return err
	}
	ctx := context.Background()
	req := x.Request.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(x.RequestBody))
	req.ContentLength = int64(len(x.RequestBody))
	route, params, err := router.FindRoute(req)
	if err != nil {
		return checkUndocumented(doc, x, err)
	}

	var problems []error
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{
			AuthenticationFunc:                presentCredential,
			MultiError:                        true,
			SkipSettingDefaults:               true,
			RejectWhenRequestBodyNotSpecified: true,
			SchemaValidationOptions:           formats,
		}}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	if reqErr != nil && x.Status >= 200 && x.Status < 300 {
		problems = append(problems, fmt.Errorf("the server accepted (%d) a request the document does not allow: %w", x.Status, reqErr))
	}
	// ValidateResponse lets a few statuses through unchecked, redirects
	// among them; none is documented here, so none may pass unseen.
	if route.Operation.Responses.Status(x.Status) == nil && route.Operation.Responses.Default() == nil {
		problems = append(problems, fmt.Errorf("status %d is not documented for %s %s", x.Status, route.Method, route.Path))
		return errors.Join(problems...)
	}
	// A body is checked against the schema of its operation, status and
	// media type, and nothing else; so a body that passed once under the
	// same three passes again, and only the status and headers are left to
	// check. Thousands of identical answers cost one schema check.
	sum := sha256.Sum256(x.Body)
	bodyKey := strings.Join([]string{route.Method, route.Path, strconv.Itoa(x.Status), x.Header.Get("Content-Type"), hex.EncodeToString(sum[:])}, "\n")
	_, bodyPassed := passedBodies.Load(bodyKey)
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: x.Status, Header: x.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, SchemaValidationOptions: formats,
			ExcludeResponseBody: bodyPassed}}
	out.SetBodyBytes(x.Body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		problems = append(problems, fmt.Errorf("response: %w", err))
	} else if !bodyPassed {
		passedBodies.Store(bodyKey, true)
	}
	return errors.Join(problems...)
}

// passedBodies holds the response bodies that passed their schema, by
// operation, status, media type and the body's SHA-256.
var passedBodies sync.Map

// checkUndocumented checks the answer to a request for a path or method
// the document does not describe: it must be an error, in the envelope.
func checkUndocumented(doc *openapi3.T, x Exchange, routeErr error) error {
	var problems []error
	if x.Status < 400 {
		problems = append(problems, fmt.Errorf("no documented operation matches (%v), yet the server answered %d", routeErr, x.Status))
	}
	if mt, _, _ := mime.ParseMediaType(x.Header.Get("Content-Type")); mt != "application/json" {
		problems = append(problems, fmt.Errorf("no documented operation matches (%v); the answer should be the JSON error envelope, got Content-Type %q", routeErr, x.Header.Get("Content-Type")))
		return errors.Join(problems...)
	}
	envelope := doc.Components.Schemas["ErrorEnvelope"]
	if envelope == nil || envelope.Value == nil {
		return errors.Join(append(problems, errors.New("openapi.json has no ErrorEnvelope schema"))...)
	}
	var body any
	if err := json.Unmarshal(x.Body, &body); err != nil {
		problems = append(problems, fmt.Errorf("no documented operation matches; the body is not JSON: %w", err))
	} else if err := envelope.Value.VisitJSON(body, append(formats, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors())...); err != nil {
		problems = append(problems, fmt.Errorf("no documented operation matches; the body is not the error envelope: %w", err))
	}
	return errors.Join(problems...)
}

// presentCredential is the check's AuthenticationFunc. Whether a
// credential is good is what the server itself decides, and the tests
// assert its answers; the document's part is where a credential goes. So a
// security scheme is satisfied when the request carries a credential in
// the place the scheme names, whatever its value, and a scheme of a kind
// this function does not know fails, so that a new kind is looked at here.
func presentCredential(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r := in.RequestValidationInput.Request
	s := in.SecurityScheme
	var found bool
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		found = strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(cred) != ""
	case s.Type == "apiKey" && s.In == "header":
		found = r.Header.Get(s.Name) != ""
	case s.Type == "apiKey" && s.In == "cookie":
		ck, err := r.Cookie(s.Name)
		found = err == nil && ck.Value != ""
	case s.Type == "apiKey" && s.In == "query":
		found = r.URL.Query().Get(s.Name) != ""
	default:
		return in.NewError(fmt.Errorf("security scheme %q is of a kind (%s %s %s) the contract check does not know", in.SecuritySchemeName, s.Type, s.Scheme, s.In))
	}
	if !found {
		return in.NewError(fmt.Errorf("no credential for security scheme %q", in.SecuritySchemeName))
	}
	return nil
}

package portal

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/webhook"
)

// offered lists the actions the endpoint forms offer.
func offered() []views.WebhookAction {
	out := make([]views.WebhookAction, len(webhook.Actions))
	for i, a := range webhook.Actions {
		out[i] = views.WebhookAction{Name: a.Name, What: a.What}
	}
	return out
}

func endpointStatus(e webhook.Endpoint) string {
	if e.Enabled {
		return "active"
	}
	return "disabled"
}

// attemptStatus is an attempt's status as the pages show it, and its
// class.
func attemptStatus(a webhook.Attempt) (string, string) {
	switch {
	case a.Status == 0:
		return "no answer", "http-5xx"
	case a.OK():
		return strconv.Itoa(a.Status), "http-2xx"
	case a.Status < 500:
		return strconv.Itoa(a.Status), "http-4xx"
	}
	return strconv.Itoa(a.Status), "http-5xx"
}

func (h *Handler) renderWebhooks(c echo.Context, status int, p views.WebhooksProps) error {
	list, err := h.Webhooks.List(c.Request().Context(), caller(c))
	if err != nil {
		return err
	}
	for _, e := range list {
		row := views.WebhookRow{ID: e.ID, URL: e.URL, Status: endpointStatus(e), Reason: e.DisabledReason,
			Actions: strings.Join(e.Actions, ", ")}
		if e.Last != nil {
			row.LastAttempt, row.LastClass = attemptStatus(*e.Last)
			row.LastAttemptAt = fmtTime(&e.Last.At)
		}
		p.Endpoints = append(p.Endpoints, row)
	}
	p.Offered = offered()
	return render(c, status, views.WebhooksPage(meta(c, "Webhooks", "settings"), p))
}

func (h *Handler) handleWebhooks(c echo.Context) error {
	return h.renderWebhooks(c, http.StatusOK, views.WebhooksProps{})
}

// webhookInput reads an endpoint form.
func webhookInput(c echo.Context) (webhook.Input, views.WebhookForm) {
	form, _ := c.FormParams()
	in := webhook.Input{URL: c.FormValue("url"), Actions: form["actions"], Enabled: c.FormValue("enabled") != ""}
	return in, views.WebhookForm{URL: in.URL, Actions: in.Actions, Enabled: in.Enabled}
}

// handleWebhookCreate answers with the new endpoint's secret, shown once:
// the form's own answer, never stored in the clear, so not a redirect.
func (h *Handler) handleWebhookCreate(c echo.Context) error {
	in, form := webhookInput(c)
	created, err := h.Webhooks.Create(c.Request().Context(), caller(c), c.FormValue("code"), in)
	if err != nil {
		prob, fields, ok := formError(c, err)
		if !ok {
			return err
		}
		return h.renderWebhooks(c, prob.Status, views.WebhooksProps{Form: form, Error: prob.Message, Errors: fields})
	}
	return render(c, http.StatusOK, views.WebhookCreatedPage(meta(c, "Endpoint registered", "settings"),
		views.WebhookCreatedProps{ID: created.Endpoint.ID, URL: created.Endpoint.URL, Secret: created.Secret}))
}

// renderWebhook shows an endpoint's page; form, when not nil, is what the
// owner typed in the edit form, kept after a refused save.
func (h *Handler) renderWebhook(c echo.Context, status int, form *views.WebhookForm, p views.WebhookProps) error {
	e, atts, err := h.Webhooks.Get(c.Request().Context(), caller(c), c.Param("id"))
	if err != nil {
		return err
	}
	p.ID, p.URL, p.Status, p.Reason, p.Actions, p.Fingerprint = e.ID, e.URL, endpointStatus(e), e.DisabledReason, e.Actions, e.Ref.Fingerprint
	p.Created, p.LastSuccess = fmtTime(&e.CreatedAt), fmtTime(e.LastSuccessAt)
	if e.FailingSince != nil {
		p.FailingSince = fmtTime(e.FailingSince)
	}
	for _, a := range atts {
		st, class := attemptStatus(a)
		p.Attempts = append(p.Attempts, views.WebhookAttemptRow{At: a.At.UTC().Format("2006-01-02 15:04:05"), DeliveryID: a.DeliveryID, EventType: a.EventType,
			Attempt: strconv.Itoa(a.Attempt), Status: st, StatusClass: class, Latency: formatInt(int(a.Latency.Milliseconds())) + " ms",
			Error: a.Error, Body: a.Body})
	}
	p.Offered = offered()
	p.Form = views.WebhookForm{URL: e.URL, Actions: e.Actions, Enabled: e.Enabled}
	if form != nil {
		p.Form = *form
	}
	return render(c, status, views.WebhookPage(meta(c, "Webhook endpoint", "settings"), p))
}

func (h *Handler) handleWebhook(c echo.Context) error {
	return h.renderWebhook(c, http.StatusOK, nil, views.WebhookProps{})
}

// webhookFailed shows the endpoint's page again with a form's error.
func (h *Handler) webhookFailed(c echo.Context, err error, formName string, form *views.WebhookForm) error {
	prob, fields, ok := formError(c, err)
	if !ok {
		return err
	}
	return h.renderWebhook(c, prob.Status, form, views.WebhookProps{Error: prob.Message, ErrorForm: formName, Errors: fields})
}

func (h *Handler) handleWebhookUpdate(c echo.Context) error {
	in, form := webhookInput(c)
	e, err := h.Webhooks.Update(c.Request().Context(), caller(c), c.FormValue("code"), c.Param("id"), in)
	if err != nil {
		return h.webhookFailed(c, err, "edit", &form)
	}
	flash := "Endpoint saved."
	if !e.Enabled {
		flash = "Endpoint saved. It is disabled: nothing is delivered to it, and its pending deliveries were cancelled."
	}
	return h.done(c, "/settings/developers/webhooks/"+e.ID, flash)
}

func (h *Handler) handleWebhookDelete(c echo.Context) error {
	e, err := h.Webhooks.Delete(c.Request().Context(), caller(c), c.FormValue("code"), c.Param("id"))
	if err != nil {
		return h.webhookFailed(c, err, "delete", nil)
	}
	// The flash is kept in the session: it names the URL as the audit
	// trail does, without a token its path or query may hold.
	return h.done(c, "/settings/developers/webhooks", "The endpoint "+e.Ref.String()+" is deleted, with its pending deliveries.")
}

func (h *Handler) handleWebhookTest(c echo.Context) error {
	id := c.Param("id")
	if err := h.Webhooks.SendTest(c.Request().Context(), caller(c), id); err != nil {
		return h.webhookFailed(c, err, "test", nil)
	}
	return h.done(c, "/settings/developers/webhooks/"+id, "A test event is on its way: its attempt appears below within a few seconds (reload the page).")
}

package portal

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/apikey"
	"keyward/web/auth"
)

// requireOwner lets only owners through; others get a 403 page that says
// why. The services check the role again.
func (h *Handler) requireOwner(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if u := getState(c).user; u == nil || u.Role != auth.RoleOwner {
			role := ""
			if u != nil {
				role = u.Role
			}
			return auth.ErrOwnerOnly(role)
		}
		return next(c)
	}
}

// handleSettings is the settings hub: the sections the user's role opens.
func (h *Handler) handleSettings(c echo.Context) error {
	st := getState(c)
	sections := []views.SettingsSection{
		{Title: "Developers", URL: "/settings/developers", What: developersWhat(st.user.Role)},
		{Title: "Audit log", URL: auditLogPath, What: "Who did what to which key, and when, in words; exported as CSV or JSON Lines with what is needed to check the chain."},
		{Title: "Team", URL: "/settings/team", What: teamWhat(st.user.Role)},
	}
	if st.user.Role == auth.RoleOwner {
		sections = append(sections, views.SettingsSection{Title: "Organisation", URL: "/settings/organization",
			What: "The organisation's name, its plan, and the key policies every key must follow."})
	}
	sections = append(sections, views.SettingsSection{Title: "Your account", URL: "/account",
		What: "Your password, sessions, recovery codes and authenticator."})
	return render(c, http.StatusOK, views.SettingsHubPage(meta(c, "Settings", "settings"), sections))
}

func developersWhat(role string) string {
	if role == auth.RoleOwner {
		return "API keys, the API request log, the audit log, webhook alerts, and an overview of keys that need attention."
	}
	return "API keys, the API request log, the audit log, and an overview of keys that need attention."
}

func teamWhat(role string) string {
	if role == auth.RoleOwner {
		return "Members and invitations: invite people, change roles, disable members and reset authenticators."
	}
	return "Who is in the organisation, with which role."
}

// handleDevelopers is the developers overview.
func (h *Handler) handleDevelopers(c echo.Context) error {
	o, err := h.Keys.Overview(c.Request().Context(), getState(c).tenant.ID)
	if err != nil {
		return err
	}
	now := h.Now()
	rows := func(keys []apikey.Key, detail func(apikey.Key) string) []views.OverviewKey {
		out := make([]views.OverviewKey, len(keys))
		for i, k := range keys {
			out[i] = views.OverviewKey{ID: k.ID, Name: k.Name, Environment: string(k.Environment), Detail: detail(k), ExpiresSoon: expiresSoon(k, now)}
		}
		return out
	}
	p := views.DevelopersProps{
		Requests: formatInt(int(o.Requests)), Refusals: formatInt(int(o.Refusals)),
		ExpiringSoon: rows(o.ExpiringSoon, func(k apikey.Key) string {
			return "expires " + fmtTime(k.ExpiresAt)
		}),
		Idle: rows(o.Idle, func(k apikey.Key) string {
			if k.LastUsedAt == nil {
				return "never used; made " + fmtTime(&k.CreatedAt)
			}
			return "last used " + fmtTime(k.LastUsedAt)
		}),
		ProdOpen: rows(o.ProdOpen, func(k apikey.Key) string { return "any address may use it" }),
		Leaked: rows(o.Leaked, func(k apikey.Key) string {
			return "reported " + fmtTime(&k.Leaked.At) + " by " + k.Leaked.Source + "; now " + k.Status(now)
		}),
	}
	return render(c, http.StatusOK, views.DevelopersPage(meta(c, "Developers", "settings"), p))
}

package portal

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/auth"
	"keyward/web/session"
)

// teamPage reads what the team page shows, into p.
func (h *Handler) teamPage(c echo.Context, p views.TeamProps) (views.TeamProps, error) {
	ctx := c.Request().Context()
	st := getState(c)
	members, err := h.Auth.Members(ctx, st.tenant.ID)
	if err != nil {
		return p, err
	}
	invs, err := h.Auth.Invitations(ctx, st.tenant.ID)
	if err != nil {
		return p, err
	}
	now := h.Now()
	p.CanChange = st.user.Role == auth.RoleOwner
	for _, m := range members {
		p.Members = append(p.Members, memberRow(m, st.user.ID))
	}
	for _, i := range invs {
		status := i.Status(now)
		p.Invitations = append(p.Invitations, views.InvitationRow{ID: strconv.FormatInt(i.ID, 10), Email: i.Email, Role: i.Role,
			Status: status, Created: fmtTime(&i.CreatedAt), Expires: fmtTime(&i.ExpiresAt), By: i.CreatedBy,
			Pending: status == auth.InvitationPending})
	}
	if p.InviteRole == "" {
		p.InviteRole = auth.RoleViewer
	}
	return p, nil
}

func memberRow(m auth.Member, me int64) views.MemberRow {
	return views.MemberRow{ID: strconv.FormatInt(m.ID, 10), Email: m.Email, Role: m.Role, TOTP: totpText(m),
		LastSignIn: fmtTime(m.LastSignInAt), Status: memberStatus(m), You: m.ID == me}
}

func totpText(m auth.Member) string {
	if m.TOTPEnrolled {
		return "on"
	}
	return "not set up"
}

func memberStatus(m auth.Member) string {
	if m.Disabled {
		return "disabled"
	}
	return "active"
}

func (h *Handler) handleTeam(c echo.Context) error {
	p, err := h.teamPage(c, views.TeamProps{})
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.TeamPage(meta(c, "Team", "settings"), p))
}

// teamFailed shows the team page again with a form's error; invitation
// names the revoke form that failed, if it was one.
func (h *Handler) teamFailed(c echo.Context, err error, p views.TeamProps, invitation string) error {
	prob, fields, ok := formError(c, err)
	if !ok {
		return err
	}
	p.Error, p.Errors, p.ErrorInvitation = prob.Message, fields, invitation
	if p, err = h.teamPage(c, p); err != nil {
		return err
	}
	return render(c, prob.Status, views.TeamPage(meta(c, "Team", "settings"), p))
}

// handleInvite answers with the new invitation's link, shown once: it is
// the form's own answer, never stored, so not a redirect.
func (h *Handler) handleInvite(c echo.Context) error {
	email, role := c.FormValue("email"), c.FormValue("role")
	inv, err := h.Auth.Invite(c.Request().Context(), caller(c), c.FormValue("code"), email, role, h.baseURL(c)+"/invite")
	if err != nil {
		return h.teamFailed(c, err, views.TeamProps{InviteEmail: email, InviteRole: role}, "")
	}
	return render(c, http.StatusOK, views.InviteCreatedPage(meta(c, "Invitation created", "settings"), views.InviteCreatedProps{
		Email: inv.Invitation.Email, Role: inv.Invitation.Role, Expires: fmtTime(&inv.Invitation.ExpiresAt), Link: inv.Link,
		Mailed: inv.Mailed, MailError: inv.MailError,
	}))
}

func (h *Handler) handleRevokeInvitation(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return auth.ErrNoSuchInvitation
	}
	inv, err := h.Auth.RevokeInvitation(c.Request().Context(), caller(c), c.FormValue("code"), id)
	if err != nil {
		return h.teamFailed(c, err, views.TeamProps{}, c.Param("id"))
	}
	return h.done(c, "/settings/team", "The invitation of "+inv.Email+" is revoked: its link no longer works.")
}

// member reads the member the path names, in the caller's organisation.
func (h *Handler) member(c echo.Context) (auth.Member, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return auth.Member{}, auth.ErrNoSuchMember
	}
	members, err := h.Auth.Members(c.Request().Context(), getState(c).tenant.ID)
	if err != nil {
		return auth.Member{}, err
	}
	for _, m := range members {
		if m.ID == id {
			return m, nil
		}
	}
	return auth.Member{}, auth.ErrNoSuchMember
}

func (h *Handler) renderMember(c echo.Context, status int, m auth.Member, p views.MemberProps) error {
	me := getState(c).user.ID
	p.ID, p.Email, p.Role, p.TOTP = strconv.FormatInt(m.ID, 10), m.Email, m.Role, totpText(m)
	p.LastSignIn, p.Status, p.Created = fmtTime(m.LastSignInAt), memberStatus(m), fmtTime(&m.CreatedAt)
	p.Enrolled, p.Disabled, p.You = m.TOTPEnrolled, m.Disabled, m.ID == me
	if p.NewRole == "" {
		p.NewRole = m.Role
	}
	return render(c, status, views.MemberPage(meta(c, m.Email, "settings"), p))
}

func (h *Handler) handleMember(c echo.Context) error {
	m, err := h.member(c)
	if err != nil {
		return err
	}
	return h.renderMember(c, http.StatusOK, m, views.MemberProps{})
}

// memberOp ends one code-confirmed change of a member: a redirect to the
// team page with a flash, or the member's page again with the error on
// the form.
func (h *Handler) memberOp(c echo.Context, form string, m auth.Member, err error, flash string) error {
	if err == nil {
		return h.done(c, "/settings/team", flash)
	}
	prob, fields, ok := formError(c, err)
	if !ok {
		return err
	}
	cur, gerr := h.member(c)
	if gerr != nil {
		return gerr
	}
	p := views.MemberProps{Error: prob.Message, ErrorForm: form, CodeError: fields["code"]}
	if form == "role" && auth.ValidRole(c.FormValue("role")) {
		p.NewRole = c.FormValue("role")
	}
	return h.renderMember(c, prob.Status, cur, p)
}

func (h *Handler) handleMemberRole(c echo.Context) error {
	id, _ := strconv.ParseInt(c.Param("id"), 10, 64)
	m, err := h.Auth.ChangeRole(c.Request().Context(), caller(c), c.FormValue("code"), id, c.FormValue("role"))
	return h.memberOp(c, "role", m, err, m.Email+" is now "+m.Role+".")
}

func (h *Handler) handleMemberDisable(c echo.Context) error {
	id, _ := strconv.ParseInt(c.Param("id"), 10, 64)
	m, err := h.Auth.DisableMember(c.Request().Context(), caller(c), c.FormValue("code"), id)
	return h.memberOp(c, "disable", m, err, m.Email+" is disabled and signed out everywhere.")
}

func (h *Handler) handleMemberEnable(c echo.Context) error {
	id, _ := strconv.ParseInt(c.Param("id"), 10, 64)
	m, err := h.Auth.EnableMember(c.Request().Context(), caller(c), c.FormValue("code"), id)
	return h.memberOp(c, "enable", m, err, m.Email+" is enabled and can sign in again.")
}

func (h *Handler) handleMemberResetMFA(c echo.Context) error {
	id, _ := strconv.ParseInt(c.Param("id"), 10, 64)
	m, err := h.Auth.ResetMemberMFA(c.Request().Context(), caller(c), c.FormValue("code"), id)
	return h.memberOp(c, "reset-mfa", m, err, m.Email+"'s authenticator is reset: their next sign-in sets up a new one.")
}

// inviteProps reads the invitation a link names, or the error that says
// why it no longer works.
func (h *Handler) inviteProps(c echo.Context) (views.InviteAcceptProps, error) {
	token := c.Param("token")
	inv, err := h.Auth.OpenInvitation(c.Request().Context(), token)
	if err != nil {
		return views.InviteAcceptProps{}, err
	}
	p := views.InviteAcceptProps{Token: token, Email: inv.Email, Role: inv.Role, Tenant: inv.Tenant, Expires: fmtTime(&inv.ExpiresAt)}
	if u := getState(c).user; u != nil {
		p.SignedInAs = u.Email
	}
	return p, nil
}

func (h *Handler) handleInviteForm(c echo.Context) error {
	p, err := h.inviteProps(c)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.InviteAcceptPage(meta(c, "Join "+p.Tenant, ""), p))
}

// handleInviteAccept creates the invited user and signs them in up to the
// password step: enrolment comes next, as for any user without an
// authenticator. Whoever was signed in in this browser is signed out.
func (h *Handler) handleInviteAccept(c echo.Context) error {
	u, err := h.Auth.AcceptInvitation(c.Request().Context(), auth.Acceptance{Token: c.Param("token"),
		Password: c.FormValue("password"), Confirm: c.FormValue("confirm_password")}, origin(c))
	if err != nil {
		prob, fields, ok := formError(c, err)
		if !ok {
			return err
		}
		p, perr := h.inviteProps(c)
		if perr != nil {
			return perr
		}
		p.Error, p.Errors = prob.Message, fields
		return render(c, prob.Status, views.InviteAcceptPage(meta(c, "Join "+p.Tenant, ""), p))
	}
	sess := getState(c).sess
	clear(sess.Values)
	sess.Values[session.KeyUserID] = u.ID
	sess.Values[session.KeyMFA] = false
	if err := h.Sessions.Renew(c.Request(), c.Response(), sess); err != nil {
		return err
	}
	h.dropCSRFToken(c)
	return c.Redirect(http.StatusSeeOther, "/mfa/enroll")
}

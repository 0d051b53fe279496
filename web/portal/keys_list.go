package portal

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"keyward/views"
)

func (h *Handler) handleKeysList(c echo.Context) error {
	return render(c, http.StatusOK, views.KeysListPage(meta(c, "API keys", "api-keys")))
}

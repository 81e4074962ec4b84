package httpserver

import (
	"encoding/json"

	"github.com/valyala/fasthttp"
)

// WriteJSON writes v as the JSON response with status.
func WriteJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = fasthttp.StatusInternalServerError
		body = []byte(`{"error":{"code":"internal_error","message":"unencodable response"}}`)
	}
	WriteRaw(ctx, status, body)
}

// WriteRaw writes an already encoded JSON body.
func WriteRaw(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

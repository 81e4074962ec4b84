package httpserver

import (
	"bytes"
	"encoding/json"

	"github.com/valyala/fasthttp"
)

// WriteJSON writes v as the JSON response with status.
func WriteJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		WriteRaw(ctx, fasthttp.StatusInternalServerError, []byte(`{"error":{"code":"internal_error","message":"unencodable response"}}`))
		return
	}
	WriteRaw(ctx, status, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// WriteRaw writes an already encoded JSON body.
func WriteRaw(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

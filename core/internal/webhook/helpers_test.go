package webhook_test

import "github.com/pipecore/pipecore/core/internal/signature"

func signatureRequest(body string, header, query map[string][]string) signature.Request {
	return signature.Request{Method: "POST", Body: []byte(body), Header: header, Query: query}
}

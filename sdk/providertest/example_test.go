package providertest_test

import (
	"os"

	"github.com/pipecore/pipecore/sdk/providertest"
)

func ExampleReport_WriteTable() {
	rep := providertest.Report{Plugin: "postbox", Version: "1.0.0", Results: []providertest.Result{
		{Check: "handshake", Status: providertest.StatusPass, Detail: "protocol 1, postbox 1.0.0"},
		{Check: "webhook/empty_body", Status: providertest.StatusFail, Detail: "ParseWebhook(\"\"): err = EOF (kind retryable), want kind invalid or permanent"},
		{Check: "unreachable/messaging/refused", Status: providertest.StatusSkip, Detail: "the plugin refused the placeholder tenant"},
	}}
	_ = rep.WriteTable(os.Stdout)
	// Output:
	// CHECK                          RESULT  DETAIL
	// handshake                      pass    protocol 1, postbox 1.0.0
	// webhook/empty_body             fail    ParseWebhook(""): err = EOF (kind retryable), want kind invalid or permanent
	// unreachable/messaging/refused  skip    the plugin refused the placeholder tenant
}

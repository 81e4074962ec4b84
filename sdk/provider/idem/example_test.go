package idem_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/idem"
)

func ExampleMemo_Do() {
	sends := idem.New[string](idem.Options{Name: "acme"})
	send := func(id string) func() (string, error) {
		return func() (string, error) { fmt.Println("sending", id); return id, nil }
	}
	ctx := context.Background()
	// Scope the key to the tenant and account; fingerprint the request.
	key := "tenant-1\x00account-7\x00" + "idempotency-key-1"

	first, _ := sends.Do(ctx, key, "body-digest-1", send("msg_1"))
	again, _ := sends.Do(ctx, key, "body-digest-1", send("msg_2"))
	_, err := sends.Do(ctx, key, "body-digest-2", send("msg_3"))
	fmt.Println(first, again)
	fmt.Println(provider.KindOf(err), errors.Is(err, idem.ErrKeyReused))
	// Output:
	// sending msg_1
	// msg_1 msg_1
	// invalid true
}

package username_test

import (
	"context"
	"fmt"

	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/username"
)

// A username that breaks a rule is refused before anything is sent, with
// a code and a sentence the page can show as they are.
func ExampleClient_Register() {
	users := username.New()
	_, err := node.New(node.Config{Relay: "http://127.0.0.1:8080", Store: store.NewMemory(), Transport: transport.NewNetwork().Transport(),
		Capabilities: []node.Capability{users}})
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"bob_1", "abcdefghijklmnopq", "alice"} {
		_, err := users.Register(context.Background(), name)
		e := node.Explain(err)
		fmt.Printf("%s: %s\n", e.Code, e.Error)
	}
	// Output:
	// invalid: invalid name: the name may hold only letters and digits, not '_' (at 3)
	// invalid: invalid name: the name is too long: 17 characters, at most 16
	// not-admitted: not admitted to a zone yet
}

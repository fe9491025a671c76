// Command hello stands in for aws-auth-webhook in the image builder's
// tests: a small static binary that, like the real one, carries CA roots.
package main

import (
	"fmt"

	_ "golang.org/x/crypto/x509roots/fallback"
)

var version = "dev"

func main() { fmt.Println("hello", version) }

// Command hello stands in for aws-auth-webhook in the image builder's
// tests: a small static binary.
package main

import "fmt"

var version = "dev"

func main() { fmt.Println("hello", version) }

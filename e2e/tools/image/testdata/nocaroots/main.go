// Command nocaroots is a binary without compiled-in CA roots, which the
// image builder must refuse for the offline base.
package main

import "fmt"

var version = "dev"

func main() { fmt.Println("nocaroots", version) }

// Command connsum serves the per-connection summary feed. See README.md.
package main

import (
	"os"

	"connsum/app"
)

func main() { os.Exit(app.Main(os.Args[1:], os.Stdout, os.Stderr)) }

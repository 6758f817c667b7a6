// Package theme is the console's look, shared by every HTML answer of the service: the console's
// pages, the login page and the HTML error pages. It holds the one stylesheet (inlined in each
// page and allowed by its hash in the Content-Security-Policy) and the page that an error
// becomes for a browser. It imports nothing of the service, so the auth module and the app's
// error handler can use it.
package theme

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

//go:embed console.css
var stylesheet string

// CSS is the stylesheet every HTML page inlines in its one <style> element.
func CSS() template.CSS { return template.CSS(stylesheet) }

// StyleHash is the CSP source ('sha256-…') of that stylesheet: the Content-Security-Policy allows
// that exact <style> element and no other inline style.
func StyleHash() string {
	sum := sha256.Sum256([]byte(stylesheet))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// documentHead is the start of every HTML page up to <body>: its title (from .Title) and the one
// stylesheet (from .CSS, which the Content-Security-Policy allows by its hash).
const documentHead = `{{define "document-head"}}<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · connsum</title>
<link rel="icon" href="data:,">
<style>{{.CSS}}</style>
</head>{{end}}`

// New returns a template set named name that holds "document-head", the start of every HTML page
// of the service up to <body>; a page invokes it with {{template "document-head" .}} and data
// that has Title and CSS.
func New(name string) *template.Template {
	return template.Must(template.New(name).Parse(documentHead))
}

var errorPage = template.Must(New("error").Parse(`{{template "document-head" .}}
<body>
<header class="top"><a class="brand" href="/dashboard">connsum</a></header>
<main class="narrow">
<section class="card">
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{if .Hint}}<p class="hint">{{.Hint}}</p>{{end}}
<p class="actions">{{if .Login}}<a class="button" href="/login{{with .Next}}?next={{.}}{{end}}">Log in</a> {{end}}<a href="/dashboard">Back to the connections</a></p>
<p class="hint">{{.Status}} · {{.Code}}</p>
</section>
</main>
</body>
</html>
`))

// ErrorPageData is what an HTML error page says.
type ErrorPageData struct {
	Status  int
	Code    string
	Message string
	// Next is the page to return to after logging in (401 only).
	Next string
}

// ErrorPage renders the HTML page of an error answer for a browser: a title for the status, the
// error's message, and where to go from there (the login page for a 401).
func ErrorPage(d ErrorPageData) []byte {
	title, hint, login := http.StatusText(d.Status), "", false
	switch d.Status {
	case http.StatusUnauthorized:
		title, hint, login = "Please log in", "Log in with the owner token, or with the one-time link that connsum serve printed.", true
	case http.StatusForbidden:
		title = "Not allowed"
	case http.StatusNotFound:
		title, hint = "Not found", "The link may be old, or the connection was removed."
	case http.StatusServiceUnavailable:
		title, hint = "Temporarily unavailable", "The database did not answer in time. Reload the page in a few seconds."
	case http.StatusBadRequest:
		title = "This address is not valid"
	}
	if d.Status >= 500 && d.Status != http.StatusServiceUnavailable {
		title = "Something went wrong"
	}
	d.Message = sentence(d.Message)
	var buf bytes.Buffer
	_ = errorPage.Execute(&buf, struct {
		ErrorPageData
		Title, Hint string
		Login       bool
		CSS         template.CSS
	}{d, title, hint, login, CSS()}) // the data is plain strings: execution cannot fail
	return buf.Bytes()
}

// sentence makes an error message (lower-case, no full stop, as in the JSON shape) a sentence.
func sentence(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[n:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

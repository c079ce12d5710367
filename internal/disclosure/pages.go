package disclosure

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/problem"
)

// honeypotField is a form field people never see (it is moved off screen)
// and bots fill in.
const honeypotField = "homepage"

// css is the only style of the pages. It is inline, allowed by its hash in
// the Content-Security-Policy, so the pages load nothing and run no script.
const css = `body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1b1b1b}
label{display:block;margin-top:1rem;font-weight:600}input[type=text],input[type=email],textarea{width:100%;box-sizing:border-box;padding:.4rem;font:inherit}
textarea{min-height:12rem}.hint{color:#555;font-size:.9rem;font-weight:400}.err{color:#a00}.box{border:1px solid #ccc;padding:1rem;margin:1rem 0}
.token{font-family:monospace;font-size:1.1rem;word-break:break-all;background:#f3f3f3;padding:.5rem}
.msg{border-left:4px solid #ccc;padding:.3rem .8rem;margin:1rem 0}.msg.team{border-color:#2a6}.body{white-space:pre-wrap;overflow-wrap:anywhere;unicode-bidi:isolate}
.hp{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}button{margin-top:1rem;padding:.5rem 1.2rem;font:inherit}`

var cspHeader = func() string {
	sum := sha256.Sum256([]byte(css))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

const pageTemplates = `
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{{.Heading}}</title><style>` + css + `</style></head><body>
<h1>{{.Heading}}</h1>{{end}}

{{define "foot"}}<hr><p class="hint"><a href="` + pathPolicy + `">Disclosure policy</a> · <a href="` + pathForm + `">Report a vulnerability</a> ·
<a href="` + pathStatusPage + `">Status of a report</a> · <a href="` + pathSecurityTxt + `">security.txt</a></p></body></html>{{end}}

{{define "policy"}}{{template "head" .}}
<h2>How to report</h2>
<p>Use the <a href="` + pathForm + `">report form</a>: it needs no account. Programs can send the same report as JSON to
<code>POST ` + pathAPIReports + `</code>.{{if .Contacts}} You can also reach us at:{{end}}</p>
{{if .Contacts}}<ul>{{range .Contacts}}<li><a href="{{.}}">{{.}}</a></li>{{end}}</ul>{{end}}
{{if .EncryptionURL}}<p>To encrypt your report, use our key: <a href="{{.EncryptionURL}}">{{.EncryptionURL}}</a>.</p>
{{else if .Encryption}}<p>To encrypt your report, use our key: <code>{{.Encryption}}</code>.</p>{{end}}
<p>Tell us what is affected (product and version), how to reproduce the problem, and what an attacker gains.
You get a tracking token with which you can follow your report and write to us. Keep it: we store only a hash of it and cannot show it again.</p>
<h2>What we promise</h2>
<ul>
<li>A person on our security team acknowledges your report within <strong>{{.AckWithin}}</strong>.</li>
<li>Until the report is settled we tell you where it stands at least every <strong>{{.UpdateEvery}}</strong>.</li>
<li>We aim to fix confirmed vulnerabilities and disclose them publicly, in coordination with you, within <strong>{{.DisclosureAfter}}</strong> of your report.
If a fix needs longer we explain why and agree a date with you.</li>
<li>If you wish, we credit you in the advisory under the name you choose.</li>
</ul>
<h2>Scope</h2>
{{range .Scope}}<p>{{.}}</p>{{end}}
<p>Out of scope: denial-of-service attacks, social engineering, physical attacks on our staff or premises, and findings from automated scanners without a demonstrated impact.</p>
<h2>Safe harbour</h2>
<p>We will not take legal action against you, nor ask anyone else to, for security research done in good faith and within this policy.
If a third party takes legal action against you for such research, we will make it known that your actions were authorised.
In return we ask you to:</p>
<ul>
<li>test only devices and accounts you own or are explicitly allowed to test;</li>
<li>avoid harming people's privacy, destroying data or disrupting services, and stop and tell us if you reach data that is not yours;</li>
<li>not exploit a vulnerability beyond what is needed to demonstrate it;</li>
<li>give us the time set out above to fix the problem before you disclose it publicly.</li>
</ul>
<p>If in doubt, ask us first through the report form.</p>
{{template "foot" .}}{{end}}

{{define "field-error"}}{{with .}}<div class="err">{{.}}</div>{{end}}{{end}}

{{define "form"}}{{template "head" .}}
<p>Please read our <a href="` + pathPolicy + `">disclosure policy</a> first. No account is needed; fields marked * are required.</p>
{{with .Error}}<p class="err" role="alert">{{.}}</p>{{end}}
<form method="post" action="` + pathForm + `" accept-charset="utf-8">
<label for="title">Title *</label>{{template "field-error" index .Errors "title"}}
<input type="text" id="title" name="title" required maxlength="200" value="{{.Form.Title}}">
<label for="description">Description * <span class="hint">what is wrong, how to reproduce it, what an attacker gains</span></label>{{template "field-error" index .Errors "description"}}
<textarea id="description" name="description" required>{{.Form.Description}}</textarea>
<label for="product">Product</label>{{template "field-error" index .Errors "product"}}
<input type="text" id="product" name="product" maxlength="200" value="{{.Form.Product}}">
<label for="version">Version</label>{{template "field-error" index .Errors "version"}}
<input type="text" id="version" name="version" maxlength="200" value="{{.Form.Version}}">
<label for="reporter_name">Your name <span class="hint">optional</span></label>{{template "field-error" index .Errors "reporter_name"}}
<input type="text" id="reporter_name" name="reporter_name" maxlength="200" value="{{.Form.ReporterName}}">
<label for="reporter_email">Your email <span class="hint">optional; we only use it to tell you when we acknowledge or answer</span></label>{{template "field-error" index .Errors "reporter_email"}}
<input type="email" id="reporter_email" name="reporter_email" maxlength="254" value="{{.Form.ReporterEmail}}">
<label><input type="checkbox" name="credit_wanted" value="yes"{{if .Form.CreditWanted}} checked{{end}}> Credit me in the advisory</label>
<label for="credit_name">Credit me as <span class="hint">defaults to your name</span></label>{{template "field-error" index .Errors "credit_name"}}
<input type="text" id="credit_name" name="credit_name" maxlength="200" value="{{.Form.CreditName}}">
<label for="language">Preferred language <span class="hint">e.g. en, de</span></label>{{template "field-error" index .Errors "language"}}
<input type="text" id="language" name="language" maxlength="35" value="{{.Form.Language}}">
<div class="hp" aria-hidden="true"><label for="` + honeypotField + `">Leave this field empty</label>
<input type="text" id="` + honeypotField + `" name="` + honeypotField + `" tabindex="-1" autocomplete="off"></div>
<button type="submit">Send report</button>
</form>
{{template "foot" .}}{{end}}

{{define "submitted"}}{{template "head" .}}
<p>{{.Receipt.Message}}</p>
<div class="box"><p>Your tracking token — <strong>copy it now</strong>, it is shown only this once:</p>
<p class="token">{{.Receipt.Token}}</p>
<p>Reference: <code>{{.Receipt.Reference}}</code><br>Received: {{when .Receipt.ReceivedAt}}<br>Acknowledgement due by: {{when .Receipt.AckDueAt}}</p></div>
<p>Enter the token on the <a href="` + pathStatusPage + `">status page</a> to see what happens to your report and to write to us,
or send it as <code>Authorization: Bearer &lt;token&gt;</code> to <code>GET ` + pathAPIStatus + `</code>.</p>
{{template "foot" .}}{{end}}

{{define "token-form"}}<form method="post" action="` + pathStatusPage + `" accept-charset="utf-8">
<label for="token">Tracking token</label>
<input type="text" id="token" name="token" required autocomplete="off" spellcheck="false" autocapitalize="off">
<button type="submit">Show status</button></form>{{end}}

{{define "status-form"}}{{template "head" .}}
{{with .Error}}<p class="err" role="alert">{{.}}</p>{{end}}
<p>Enter the tracking token you got when you sent your report.</p>
{{template "token-form" .}}
{{template "foot" .}}{{end}}

{{define "status"}}{{template "head" .}}
{{with .Status}}
<p><strong>{{.Title}}</strong> <span class="hint">(reference {{.Reference}})</span></p>
<p>Stage: <strong>{{.Stage}}</strong> — {{.Status}}</p>
<ul><li>Received: {{when .ReceivedAt}}</li>
{{with .AckedAt}}<li>Acknowledged: {{when .}}</li>{{end}}
{{with .AckDueAt}}<li>Acknowledgement due by: {{when .}}</li>{{end}}
{{with .LastUpdateAt}}<li>Last update from our team: {{when .}}</li>{{end}}
{{with .NextUpdateDue}}<li>Next update due by: {{when .}}</li>{{end}}</ul>
<h2>Messages</h2>
{{range .Messages}}<div class="msg {{.From}}"><div class="hint">{{if eq .From "team"}}Security team{{else}}You{{end}}, {{when .CreatedAt}}</div>
<div class="body" dir="auto">{{.Body}}</div></div>{{else}}<p class="hint">No messages yet.</p>{{end}}
{{end}}
{{with .Error}}<p class="err" role="alert">{{.}}</p>{{end}}
{{if gt .Status.MessagesLeft 0}}<form method="post" action="` + pathStatusPage + `" accept-charset="utf-8">
<input type="hidden" name="token" value="{{.Token}}">
<label for="message">Write to the security team <span class="hint">at most {{.Status.MaxMessageSize}} bytes; {{.Status.MessagesLeft}} messages left</span></label>
<textarea id="message" name="message" required>{{.Draft}}</textarea>
<button type="submit">Send message</button></form>{{end}}
{{template "foot" .}}{{end}}

{{define "error"}}{{template "head" .}}
<p class="err" role="alert">{{.Error}}</p>
<p>Go back and try again, or start from the <a href="` + pathForm + `">report form</a>.</p>
{{template "foot" .}}{{end}}
`

func parsePages() (*template.Template, error) {
	return template.New("pages").Funcs(template.FuncMap{"when": when}).Parse(pageTemplates)
}

// pageData is what every page template gets.
type pageData struct {
	Heading string
	// policy
	Contacts        []template.URL
	Encryption      string
	EncryptionURL   template.URL
	AckWithin       string
	UpdateEvery     string
	DisclosureAfter string
	Scope           []string
	// report form
	Form   ReportRequest
	Errors map[string]string
	// results
	Receipt *Receipt
	Status  *ReporterStatus
	Token   string
	Draft   string
	Error   string
}

func (h *handler) heading(s string) string {
	if h.cfg.OrgName != "" {
		return h.cfg.OrgName + ": " + s
	}
	return s
}

// render writes one page. Pages that show a token or a report are never
// cached.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, name string, d pageData) {
	var buf bytes.Buffer
	if err := h.pages.ExecuteTemplate(&buf, name, d); err != nil {
		h.problem(w, r, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", cspHeader)
	if name == "policy" {
		hd.Set("Cache-Control", "public, max-age=300")
	} else {
		hd.Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// htmlError renders err as an error page with the status the API would use.
func (h *handler) htmlError(w http.ResponseWriter, r *http.Request, err error) {
	p := h.classify(w, r, err)
	h.render(w, r, p.Status, "error", pageData{Heading: h.heading(p.Title), Error: p.Detail})
}

// human writes a duration the way a policy states it.
func human(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + one + "s"
	}
	switch {
	case d%(24*time.Hour) == 0 && d >= 72*time.Hour: // "48 hours" reads better than "2 days"
		return unit(int64(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	}
	return d.String()
}

func (h *handler) policyPage(w http.ResponseWriter, r *http.Request) {
	scope := []string{}
	for _, p := range strings.Split(strings.ReplaceAll(h.cfg.Scope, "\r\n", "\n"), "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			scope = append(scope, p)
		}
	}
	if len(scope) == 0 {
		org := h.cfg.OrgName
		if org == "" {
			org = "us"
		}
		scope = []string{"In scope are the products and services made by " + org +
			": devices, their firmware and software, the update infrastructure and this site."}
	}
	// Config.Validate admitted only mailto:, https: and tel: contacts, so
	// they may be links; html/template would otherwise blank tel: ones.
	contacts := make([]template.URL, len(h.cfg.Contacts))
	for i, c := range h.cfg.Contacts {
		contacts[i] = template.URL(c)
	}
	d := pageData{Heading: h.heading("Vulnerability disclosure policy"),
		Contacts: contacts, Encryption: h.cfg.Encryption, AckWithin: human(h.cfg.AckWithin),
		UpdateEvery: human(h.cfg.StatusUpdateEvery), DisclosureAfter: human(h.cfg.DisclosureAfter), Scope: scope}
	if strings.HasPrefix(h.cfg.Encryption, "https:") || strings.HasPrefix(h.cfg.Encryption, "http:") {
		d.EncryptionURL = template.URL(h.cfg.Encryption)
	}
	h.render(w, r, http.StatusOK, "policy", d)
}

func (h *handler) formPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "form", pageData{Heading: h.heading("Report a vulnerability")})
}

// parseForm reads a bounded urlencoded form body into r.PostForm.
func (h *handler) parseForm(w http.ResponseWriter, r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return &statusError{http.StatusUnsupportedMediaType, "send the form as application/x-www-form-urlencoded"}
	}
	if r.ContentLength > h.cfg.MaxBody {
		return tooLarge(h.cfg.MaxBody)
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxBody)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(h.cfg.MaxBody)
		}
		return problem.Invalid("the form data is malformed")
	}
	return nil
}

func (h *handler) formSubmit(w http.ResponseWriter, r *http.Request) {
	key := clientKey(r, h.trusted)
	if !h.take(w, r, h.reports, key, true) {
		return
	}
	if err := h.parseForm(w, r); err != nil {
		h.reports.refund(key)
		h.htmlError(w, r, err)
		return
	}
	f := r.PostForm
	done := func(rc Receipt) {
		h.render(w, r, http.StatusOK, "submitted", pageData{Heading: h.heading("Report received"), Receipt: &rc})
	}
	if f.Get(honeypotField) != "" {
		h.log.InfoContext(r.Context(), "report form honeypot filled; nothing stored")
		done(h.svc.decoyReceipt())
		return
	}
	req := ReportRequest{Title: f.Get("title"), Description: f.Get("description"), Product: f.Get("product"),
		Version: f.Get("version"), ReporterName: f.Get("reporter_name"), ReporterEmail: f.Get("reporter_email"),
		CreditWanted: f.Get("credit_wanted") != "", CreditName: f.Get("credit_name"), Language: f.Get("language")}
	rc, err := h.svc.Submit(r.Context(), h.cfg.OrgID, req, SourceForm)
	var pe *problem.Error
	switch {
	case errors.As(err, &pe) && pe.Kind == problem.KindInvalid:
		h.reports.refund(key)
		errs := map[string]string{}
		for _, fe := range pe.Fields {
			errs[fe.Field] = fe.Detail
		}
		// The values go back into the form (escaped by html/template), so
		// a person fixes one field instead of retyping the report.
		h.render(w, r, http.StatusBadRequest, "form", pageData{Heading: h.heading("Report a vulnerability"), Form: req,
			Errors: errs, Error: "Please correct the fields marked below."})
	case err != nil:
		h.htmlError(w, r, err)
	default:
		done(rc)
	}
}

func (h *handler) statusForm(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "status-form", pageData{Heading: h.heading("Status of a report")})
}

// statusPage shows a report's status for the token in the form, after
// adding the form's message if there is one.
func (h *handler) statusPage(w http.ResponseWriter, r *http.Request) {
	key := clientKey(r, h.trusted)
	if !h.take(w, r, h.status, key, true) {
		return
	}
	if err := h.parseForm(w, r); err != nil {
		h.htmlError(w, r, err)
		return
	}
	token, draft := strings.TrimSpace(r.PostForm.Get("token")), r.PostForm.Get("message")
	heading := h.heading("Status of a report")
	var msgErr error
	status := http.StatusOK
	if strings.TrimSpace(draft) != "" {
		if !h.take(w, r, h.messages, key, true) {
			return
		}
		_, msgErr = h.svc.AddReporterMessage(r.Context(), h.cfg.OrgID, token, MessageRequest{Body: draft})
		if refundable(msgErr) {
			h.messages.refund(key)
		}
		if msgErr == nil {
			draft = ""
		}
	}
	st, err := h.svc.Status(r.Context(), h.cfg.OrgID, token)
	if problem.Is(err, problem.KindUnauthenticated) || problem.Is(msgErr, problem.KindUnauthenticated) {
		// Empty, malformed and unknown tokens get the same page.
		h.render(w, r, http.StatusNotFound, "status-form", pageData{Heading: heading,
			Error: "No report matches that tracking token. Check that you copied all of it."})
		return
	}
	if err != nil {
		h.htmlError(w, r, err)
		return
	}
	d := pageData{Heading: heading, Status: &st, Token: token, Draft: draft}
	if msgErr != nil {
		p := h.classify(w, r, msgErr)
		status, d.Error = p.Status, "Your message was not sent: "+p.Detail
	}
	h.render(w, r, status, "status", d)
}

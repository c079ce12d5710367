// Package httpstatus maps problem kinds to HTTP statuses, for the handlers
// that write RFC 9457 problem details (the admin API and the public
// disclosure endpoints); package problem itself stays free of HTTP.
package httpstatus

import (
	"net/http"

	"github.com/steward-iot/steward/internal/problem"
)

// Of is the HTTP status that answers an error of kind k.
func Of(k problem.Kind) int {
	switch k {
	case problem.KindInvalid:
		return http.StatusBadRequest
	case problem.KindNotFound:
		return http.StatusNotFound
	case problem.KindConflict:
		return http.StatusConflict
	case problem.KindUnauthenticated:
		return http.StatusUnauthorized
	case problem.KindForbidden:
		return http.StatusForbidden
	case problem.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case problem.KindRateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

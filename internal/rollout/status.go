package rollout

import (
	"context"
	"time"
	"unicode/utf8"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/paging"
	"github.com/steward-iot/steward/internal/problem"
)

// UpdateEvent is one step of an update as a device reported it: an entry
// of the device's update history.
type UpdateEvent struct {
	ID         string `json:"id"`
	DeviceID   string `json:"device_id"`
	ReportID   string `json:"report_id" doc:"the device's id of the report"`
	ReleaseID  string `json:"release_id"`
	Version    string `json:"version" doc:"the release's version"`
	Step       string `json:"step" enum:"downloading,downloaded,installing,rebooting,committed,failed,rolled-back"`
	ReasonCode string `json:"reason_code,omitempty" enum:"download-failed,verification-failed,insufficient-storage,install-failed,health-check-failed,power-loss,rollback-refused"`
	Detail     string `json:"detail,omitempty"`
	BytesDone  *int64 `json:"bytes_done,omitempty"`
	BytesTotal *int64 `json:"bytes_total,omitempty"`
	// DeviceTime is the device's clock at the step; ReceivedAt the server's.
	DeviceTime time.Time `json:"device_time"`
	ReceivedAt time.Time `json:"received_at"`
}

var steps = map[string]bool{
	proto.StepDownloading: true, proto.StepDownloaded: true, proto.StepInstalling: true, proto.StepRebooting: true,
	proto.StepCommitted: true, proto.StepFailed: true, proto.StepRolledBack: true,
}

var reasons = map[string]bool{
	proto.ReasonDownloadFailed: true, proto.ReasonVerificationFailed: true, proto.ReasonInsufficientStorage: true,
	proto.ReasonInstallFailed: true, proto.ReasonHealthCheckFailed: true, proto.ReasonPowerLoss: true,
	proto.ReasonRollbackRefused: true,
}

// ValidateStatus checks a status report without looking at the store.
func ValidateStatus(req proto.UpdateStatus) error {
	if err := validReportID(req.ReportID); err != nil {
		return err
	}
	if req.ReleaseID == "" {
		return problem.InvalidField("release_id", "name the release this report is about")
	}
	if !steps[req.Step] {
		return problem.InvalidField("step", "step %q is not one of downloading, downloaded, installing, rebooting, committed, failed, rolled-back", req.Step)
	}
	switch {
	case req.ReasonCode != "" && !reasons[req.ReasonCode]:
		return problem.InvalidField("reason_code", "reason_code %q is not one of download-failed, verification-failed, insufficient-storage, install-failed, health-check-failed, power-loss, rollback-refused", req.ReasonCode)
	case req.Step == proto.StepFailed && req.ReasonCode == "":
		return problem.InvalidField("reason_code", "a failed step needs a reason_code")
	case req.ReasonCode != "" && req.Step != proto.StepFailed && req.Step != proto.StepRolledBack:
		return problem.InvalidField("reason_code", "reason_code is only for the failed and rolled-back steps, not %s", req.Step)
	}
	if len(req.Detail) > proto.MaxStatusDetail {
		return problem.InvalidField("detail", "detail is %d bytes; at most %d", len(req.Detail), proto.MaxStatusDetail)
	}
	if !utf8.ValidString(req.Detail) {
		return problem.InvalidField("detail", "detail is not valid UTF-8")
	}
	if req.BytesDone != nil && *req.BytesDone < 0 {
		return problem.InvalidField("bytes_done", "bytes_done is negative")
	}
	if req.BytesTotal != nil && *req.BytesTotal < 0 {
		return problem.InvalidField("bytes_total", "bytes_total is negative")
	}
	if req.BytesDone != nil && req.BytesTotal != nil && *req.BytesDone > *req.BytesTotal {
		return problem.InvalidField("bytes_done", "bytes_done %d is over bytes_total %d", *req.BytesDone, *req.BytesTotal)
	}
	if req.At.IsZero() {
		return problem.InvalidField("at", "at is required: the device's time of the step")
	}
	return nil
}

func validReportID(s string) error {
	if s == "" || len(s) > proto.MaxStatusReportID {
		return problem.InvalidField("report_id", "report_id must be 1 to %d characters", proto.MaxStatusReportID)
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
		if !ok {
			return problem.InvalidField("report_id", "report_id may hold only A-Z a-z 0-9 . _ : -")
		}
	}
	return nil
}

// RecordStatus stores a device's report of an update step in its update
// history. It is idempotent on the report id: a report sent again is
// answered duplicate and changes nothing, even when two copies race. The
// release must be one of the device's organization, for its product.
func (s *Service) RecordStatus(ctx context.Context, d inventory.Device, req proto.UpdateStatus) (duplicate bool, err error) {
	if err := ValidateStatus(req); err != nil {
		return false, err
	}
	e := UpdateEvent{ID: id.New(), DeviceID: d.ID, ReportID: req.ReportID, ReleaseID: req.ReleaseID, Step: req.Step,
		ReasonCode: req.ReasonCode, Detail: req.Detail, BytesDone: req.BytesDone, BytesTotal: req.BytesTotal,
		DeviceTime: clock.Norm(req.At), ReceivedAt: clock.Norm(s.clock.Now())}
	err = s.store.Write(ctx, func(tx Tx) error {
		duplicate = false // a retried transaction starts over
		r, err := tx.ReleaseByID(ctx, d.OrgID, req.ReleaseID)
		if problem.Is(err, problem.KindNotFound) {
			return problem.InvalidField("release_id", "no release %s in this device's organization", req.ReleaseID)
		} else if err != nil {
			return err
		}
		if r.ProductID != d.ProductID {
			return problem.InvalidField("release_id", "release %s %s is for product %s, not this device's", r.Product, r.Version, r.Product)
		}
		e.Version = r.Version
		inserted, err := tx.AddUpdateEvent(ctx, d.OrgID, e)
		if err != nil {
			return err
		}
		if !inserted {
			duplicate = true
			return nil
		}
		if err := advanceUpdates(ctx, tx, d, req, e.ReceivedAt); err != nil {
			return err
		}
		details := map[string]any{"report_id": e.ReportID, "release_id": r.ID, "version": r.Version, "step": e.Step}
		if e.ReasonCode != "" {
			details["reason_code"] = e.ReasonCode
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: d.OrgID, Actor: access.Actor{Kind: access.ActorDevice, ID: d.ID, Name: d.Serial},
			Action: "device.update_status", TargetType: "device", TargetID: d.ID, Details: details})
		return err
	})
	return duplicate, err
}

// History returns a page of a device's update history, oldest first (in
// the order the server received the reports), after the event id after.
func (s *Service) History(ctx context.Context, p access.Principal, deviceID string, after string, limit int) ([]UpdateEvent, string, error) {
	if err := p.Require(access.DeviceRead); err != nil {
		return nil, "", err
	}
	limit = paging.Limit(limit)
	var items []UpdateEvent
	err := s.store.Read(ctx, func(tx Tx) error {
		if _, err := tx.DeviceByID(ctx, p.OrgID, deviceID); err != nil {
			return err
		}
		var err error
		items, err = tx.UpdateHistory(ctx, p.OrgID, deviceID, after, limit+1)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	items, next := paging.Trim(items, limit, func(e UpdateEvent) string { return e.ID })
	return items, next, nil
}

// stepState maps a reported step to the DeviceUpdate state it moves to.
var stepState = map[string]string{
	proto.StepDownloading: DUDownloading, proto.StepDownloaded: DUDownloaded, proto.StepInstalling: DUInstalling,
	proto.StepRebooting: DURebooting, proto.StepCommitted: DUSucceeded, proto.StepFailed: DUFailed, proto.StepRolledBack: DURolledBack,
}

// advanceUpdates moves the device's rows of every rollout of the reported
// release, live or not: a device that had started when its rollout was
// cancelled or aborted still finishes (or fails) in that rollout's record.
//
//   - A step moves only rows in flight, except "committed", which is the
//     truth whenever it comes: it also turns a failed or timed-out row into
//     succeeded (a late success after a time-out). A cancelled row (an
//     offer withdrawn or superseded) stays cancelled.
//   - Any accepted report about a row in flight is progress: a repeated
//     step (periodic "downloading" reports with bytes_done) refreshes the
//     row's last-progress time, which the device timeout runs from.
//   - A failure counts one more failure of the row and drops the
//     rollout's assignment, whatever the rollout's state: the device is
//     offered the release again only by a live rollout at a later
//     check-in, with retries left.
func advanceUpdates(ctx context.Context, tx Tx, d inventory.Device, req proto.UpdateStatus, at time.Time) error {
	us, err := tx.ReleaseDeviceUpdates(ctx, d.OrgID, d.ID, req.ReleaseID)
	if err != nil {
		return err
	}
	for _, u := range us {
		r, err := tx.RolloutByID(ctx, d.OrgID, u.RolloutID)
		if err != nil {
			return err
		}
		to := stepState[req.Step]
		if r.Mode == ModeDownloadOnly && to == DUDownloaded {
			to = DUSucceeded // downloading is all a download-only rollout asks for
		}
		switch {
		case inFlight[u.State] && to == u.State:
			u.UpdatedAt = at // progress within a step
		case inFlight[u.State], to == DUSucceeded && failure[u.State]:
			u.State, u.UpdatedAt, u.Reason = to, at, req.ReasonCode
			if to == DUSucceeded || failure[to] {
				u.FinishedAt = &at
			}
			if failure[to] {
				u.Failures++
			}
		default:
			continue // finished: a late or repeated report changes nothing
		}
		if err := tx.PutDeviceUpdate(ctx, d.OrgID, u); err != nil {
			return err
		}
		if failure[u.State] {
			if _, err := tx.DeleteRolloutAssignment(ctx, d.OrgID, d.ID, u.RolloutID); err != nil {
				return err
			}
		}
	}
	return nil
}

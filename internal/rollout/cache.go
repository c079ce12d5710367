package rollout

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/inventory/query"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout/window"
)

// CacheTTL bounds how stale an organization's cached live rollouts and
// group windows may be. Changes made through this process invalidate the
// cache at once; changes made by another replica (or its scheduler) are
// seen within CacheTTL.
const CacheTTL = 5 * time.Second

// live is a running or paused rollout with what check-ins need of it,
// loaded once per CacheTTL instead of once per check-in.
type live struct {
	Rollout
	release    release.Release
	hardwareID string
	// Target membership: a static group's id, or a parsed query (the
	// target query, or a dynamic group's query).
	staticGroup string
	query       *query.Query
	needTags    bool
	fullBytes   int64            // the largest full image
	deltas      map[string]int64 // precursor sha256 → delta size
}

// groupWin is a group's maintenance window with its membership test.
type groupWin struct {
	groupID  string
	static   bool
	query    *query.Query
	needTags bool
	win      window.Window
}

type orgView struct {
	rollouts []*live
	windows  []groupWin
}

type cacheEntry struct {
	mu     sync.Mutex // held while loading, so one caller loads and the rest wait
	view   *orgView
	loaded time.Time
}

// liveCache caches each organization's live rollouts and group windows.
type liveCache struct {
	mu      sync.Mutex
	entries map[string]*cacheEntry
}

func (c *liveCache) entry(orgID string) *cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*cacheEntry{}
	}
	e, ok := c.entries[orgID]
	if !ok {
		e = &cacheEntry{}
		c.entries[orgID] = e
	}
	return e
}

// invalidate makes the next check-in of the organization reload.
func (c *liveCache) invalidate(orgID string) {
	e := c.entry(orgID)
	e.mu.Lock()
	e.loaded = time.Time{}
	e.mu.Unlock()
}

func (c *liveCache) get(ctx context.Context, orgID string, now time.Time, load func(context.Context, string) (*orgView, error)) (*orgView, error) {
	e := c.entry(orgID)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.view != nil && !e.loaded.IsZero() && now.Sub(e.loaded) < CacheTTL && now.Sub(e.loaded) >= 0 {
		return e.view, nil
	}
	v, err := load(ctx, orgID)
	if err != nil {
		if e.view != nil {
			return e.view, nil // serve the stale view rather than fail check-ins on a blip
		}
		return nil, err
	}
	e.view, e.loaded = v, now
	return v, nil
}

// loadView reads an organization's live rollouts and windows.
func (s *Service) loadView(ctx context.Context, orgID string) (*orgView, error) {
	v := &orgView{}
	err := s.store.Read(ctx, func(tx Tx) error {
		v.rollouts, v.windows = nil, nil
		rs, err := tx.LiveRollouts(ctx, orgID)
		if err != nil {
			return err
		}
		for _, r := range rs {
			l, err := s.prepare(ctx, tx, r)
			if err != nil {
				return err
			}
			v.rollouts = append(v.rollouts, l)
		}
		ws, err := tx.GroupWindows(ctx, orgID)
		if err != nil {
			return err
		}
		for _, w := range ws {
			gw := groupWin{groupID: w.GroupID, static: w.Query == ""}
			if gw.win, err = window.Parse(w.Cron, time.Duration(w.DurationSeconds)*time.Second, w.TimeZone); err != nil {
				s.log.Warn("ignoring a group's maintenance window that no longer parses", "group_id", w.GroupID, "err", err)
				continue
			}
			if !gw.static {
				if gw.query, err = query.Parse(w.Query, inventory.Schema); err != nil {
					return fmt.Errorf("stored query of group %s: %w", w.GroupID, err)
				}
				gw.needTags = usesTags(gw.query)
			}
			v.windows = append(v.windows, gw)
		}
		return nil
	})
	return v, err
}

// prepare loads what deciding about r at check-in needs.
func (s *Service) prepare(ctx context.Context, tx Tx, r Rollout) (*live, error) {
	l := &live{Rollout: r, deltas: map[string]int64{}}
	rel, err := tx.ReleaseByID(ctx, r.OrgID, r.ReleaseID)
	if err != nil {
		return nil, fmt.Errorf("release of rollout %s: %w", r.ID, err)
	}
	prod, err := tx.ProductByID(ctx, r.OrgID, r.ProductID)
	if err != nil {
		return nil, fmt.Errorf("product of rollout %s: %w", r.ID, err)
	}
	l.release, l.hardwareID = rel, prod.HardwareID
	for _, a := range rel.Artifacts {
		switch a.Kind {
		case release.KindFull:
			l.fullBytes = max(l.fullBytes, a.Size)
		case release.KindDelta:
			if cur, ok := l.deltas[a.PrecursorSHA256]; !ok || a.Size < cur {
				l.deltas[a.PrecursorSHA256] = a.Size
			}
		}
	}
	src := r.TargetQuery
	if r.TargetGroupID != "" {
		g, err := tx.GroupByID(ctx, r.OrgID, r.TargetGroupID)
		if err != nil {
			return nil, fmt.Errorf("target group of rollout %s: %w", r.ID, err)
		}
		if g.Query == "" {
			l.staticGroup = g.ID
		}
		src = g.Query
	}
	if src != "" {
		if l.query, err = query.Parse(src, inventory.Schema); err != nil {
			return nil, fmt.Errorf("target of rollout %s: %w", r.ID, err)
		}
		l.needTags = usesTags(l.query)
	}
	return l, nil
}

// usesTags reports whether a query may read tags (then check-ins load the
// device's tags). The canonical form names tag fields with their prefix; a
// string literal holding the prefix only costs a needless read.
func usesTags(q *query.Query) bool {
	return strings.Contains(q.String(), inventory.Schema.TagPrefix)
}

// record is a checking-in device as query.Match sees it, with the state it
// reports now rather than the batched state in the store.
type record struct {
	d          inventory.Device
	st         inventory.State
	hardwareID string
	tags       map[string]string
	now        time.Time
}

func (r record) Field(name string) (any, bool) {
	switch name {
	case "product":
		return r.d.Product, true
	case "hardware_id":
		return r.hardwareID, true
	case "status":
		return r.d.Status, true
	case "serial":
		return r.d.Serial, true
	case "version":
		return r.d.InstalledVersion, r.d.InstalledVersion != ""
	case "battery":
		if r.st.BatteryPercent == nil {
			return nil, false
		}
		return int64(*r.st.BatteryPercent), true
	case "on_mains":
		return r.st.OnMains, true
	case "link":
		return r.st.Link, true
	case "metered":
		return r.st.Metered, true
	case "free_storage":
		return r.st.FreeStorage, true
	case "last_seen_age":
		return r.now, true // it is checking in now
	case "enrolled_age":
		return r.d.CreatedAt, true
	}
	return nil, false
}

func (r record) Tag(key string) (string, bool) {
	v, ok := r.tags[key]
	return v, ok
}

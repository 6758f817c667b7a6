package catalog

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"

	"connsum/modules/httpx"
)

var (
	connectorIDRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)
	connectionIDRE = regexp.MustCompile(`^cin_[A-Za-z0-9_]{1,64}$`)
	statuses       = map[string]bool{StatusActive: true, StatusPaused: true, StatusRevoked: true, StatusDraft: true}
	sourceKinds    = map[string]bool{"account": true, "local_device": true, "browser_collector": true, "manual": true}
)

const maxDisplayName = 200

// ValidConnectorID reports whether id is a well-formed connector id.
func ValidConnectorID(id string) bool { return connectorIDRE.MatchString(id) }

// ValidConnectionID reports whether id is a well-formed client-given connection id.
func ValidConnectionID(id string) bool { return connectionIDRE.MatchString(id) }

// Manifest is a validated connector manifest.
type Manifest struct {
	DisplayName string
	Version     *string
	Listed      bool
	ProfileKey  *string
	Raw         json.RawMessage // compacted, unknown keys kept
}

// ParseManifest validates a manifest body (SPEC §1.1). Only display_name is required; the
// known keys must have their documented types; unknown keys are kept as they are.
func ParseManifest(raw []byte) (Manifest, error) {
	o, err := httpx.ParseObject(raw, "")
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if m.DisplayName, err = o.RequiredString("display_name"); err != nil {
		return m, err
	}
	if len(m.DisplayName) > maxDisplayName {
		return m, httpx.Invalid("display_name", "must be at most %d bytes", maxDisplayName)
	}
	if v, ok, err := o.String("version"); err != nil {
		return m, err
	} else if ok {
		m.Version = &v
	}
	if streams, _, err := o.Array("streams"); err != nil {
		return m, err
	} else {
		seen := map[string]bool{}
		for i, s := range streams {
			so, err := httpx.ParseObject(s, o.Path("streams")+"["+strconv.Itoa(i)+"]")
			if err != nil {
				return m, err
			}
			name, err := so.RequiredString("name")
			if err != nil {
				return m, err
			}
			if seen[name] {
				return m, httpx.Invalid(so.Path("name"), "duplicate stream name %q", name)
			}
			seen[name] = true
		}
	}
	m.Listed = true
	if caps, ok, err := o.Object("capabilities"); err != nil {
		return m, err
	} else if ok {
		if rp, ok, err := caps.Object("refresh_policy"); err != nil {
			return m, err
		} else if ok {
			if _, _, err := rp.NonNegativeInt("maximum_staleness_seconds", false); err != nil {
				return m, err
			}
		}
		if bs, ok, err := caps.Object("browser_surface"); err != nil {
			return m, err
		} else if ok {
			if pk, ok, err := bs.String("profile_key"); err != nil {
				return m, err
			} else if ok && strings.TrimSpace(pk) != "" {
				t := strings.TrimSpace(pk)
				m.ProfileKey = &t
			}
		}
		if pl, ok, err := caps.Object("public_listing"); err != nil {
			return m, err
		} else if ok {
			if listed, ok, err := pl.Bool("listed"); err != nil {
				return m, err
			} else if ok {
				m.Listed = listed
			}
		}
	}
	// Stored compacted as sent: json.Compact keeps every escape and character as given (no
	// HTML escaping, which json.Marshal of a RawMessage would add). The bytes were just parsed,
	// so it cannot fail.
	var buf bytes.Buffer
	_ = json.Compact(&buf, raw)
	m.Raw = buf.Bytes()
	return m, nil
}

// ConnectionInput is a validated POST /_ref/connections body.
type ConnectionInput struct {
	ConnectorID      string
	ConnectionID     string // empty: derived
	DisplayName      *string
	Status           string
	SourceKind       string
	SourceBindingKey string
}

// ParseConnectionInput validates a connection create body and applies the defaults of SPEC §1.2.
func ParseConnectionInput(raw []byte) (ConnectionInput, error) {
	o, err := httpx.ParseObject(raw, "")
	if err != nil {
		return ConnectionInput{}, err
	}
	in := ConnectionInput{Status: StatusActive, SourceKind: "account", SourceBindingKey: "default"}
	if err := o.Known("connector_id", "display_name", "status", "source_kind", "source_binding_key", "connection_id"); err != nil {
		return in, err
	}
	if in.ConnectorID, err = o.RequiredString("connector_id"); err != nil {
		return in, err
	}
	if !ValidConnectorID(in.ConnectorID) {
		return in, httpx.Invalid("connector_id", "must match ^[a-z0-9][a-z0-9._-]{0,127}$")
	}
	if in.DisplayName, err = displayName(o); err != nil {
		return in, err
	}
	if s, ok, err := o.String("status"); err != nil {
		return in, err
	} else if ok {
		if !statuses[s] {
			return in, httpx.Invalid("status", "must be one of active, paused, revoked, draft")
		}
		in.Status = s
	}
	if s, ok, err := o.String("source_kind"); err != nil {
		return in, err
	} else if ok {
		if !sourceKinds[s] {
			return in, httpx.Invalid("source_kind", "must be one of account, local_device, browser_collector, manual")
		}
		in.SourceKind = s
	}
	if s, ok, err := o.String("source_binding_key"); err != nil {
		return in, err
	} else if ok {
		if s == "" || len(s) > 256 {
			return in, httpx.Invalid("source_binding_key", "must be 1 to 256 bytes")
		}
		in.SourceBindingKey = s
	}
	if s, ok, err := o.String("connection_id"); err != nil {
		return in, err
	} else if ok {
		if !ValidConnectionID(s) {
			return in, httpx.Invalid("connection_id", "must match ^cin_[A-Za-z0-9_]{1,64}$")
		}
		in.ConnectionID = s
	}
	return in, o.RejectUnknown()
}

// ConnectionPatch is a validated PATCH body.
type ConnectionPatch struct {
	DisplayName *string
	Status      *string
}

// ParseConnectionPatch validates a PATCH /_ref/connections/{id} body.
func ParseConnectionPatch(raw []byte) (ConnectionPatch, error) {
	o, err := httpx.ParseObject(raw, "")
	if err != nil {
		return ConnectionPatch{}, err
	}
	var p ConnectionPatch
	if err := o.Known("display_name", "status"); err != nil {
		return p, err
	}
	if p.DisplayName, err = displayName(o); err != nil {
		return p, err
	}
	if s, ok, err := o.String("status"); err != nil {
		return p, err
	} else if ok {
		if !statuses[s] {
			return p, httpx.Invalid("status", "must be one of active, paused, revoked, draft")
		}
		p.Status = &s
	}
	if err := o.RejectUnknown(); err != nil {
		return p, err
	}
	if p.DisplayName == nil && p.Status == nil {
		return p, httpx.Invalid("", "give display_name or status")
	}
	return p, nil
}

func displayName(o *httpx.Object) (*string, error) {
	s, ok, err := o.String("display_name")
	if err != nil || !ok {
		return nil, err
	}
	if strings.TrimSpace(s) == "" || len(s) > maxDisplayName {
		return nil, httpx.Invalid("display_name", "must be 1 to %d bytes and not blank", maxDisplayName)
	}
	return &s, nil
}

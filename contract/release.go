package contract

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Release is ReleaseFile: what the image is. The builder writes it
// (Marshal); stage 2 reads the version and the build epoch, `basalt
// inspect` the kernel and the A/B mechanism (ParseRelease).
type Release struct {
	Name, Version, Board, Arch, Kernel string
	// BuildEpoch is the build time in Unix seconds (SOURCE_DATE_EPOCH),
	// the device clock's floor.
	BuildEpoch int64
	// More are the keys other packages own (ab.ReleaseKey,
	// bundle.CompatKey, ReleaseOrchestrator, ...), in file order.
	More []KeyValue
}

// KeyValue is one line of ReleaseFile.
type KeyValue struct{ Key, Value string }

// Get returns the value of one of the More keys ("" when absent).
func (r Release) Get(key string) string {
	for _, kv := range r.More {
		if kv.Key == key {
			return kv.Value
		}
	}
	return ""
}

// Keys of ReleaseFile.
const (
	ReleaseName       = "NAME"
	ReleaseVersion    = "VERSION"
	ReleaseBoard      = "BOARD"
	ReleaseArch       = "ARCH"
	ReleaseKernel     = "KERNEL"
	ReleaseBuildEpoch = "BUILD_EPOCH"
)

// Marshal returns the file's KEY=value lines: the fields in a fixed order,
// then More.
func (r Release) Marshal() []byte {
	b := fmt.Appendf(nil, "%s=%s\n%s=%s\n%s=%s\n%s=%s\n%s=%s\n%s=%d\n",
		ReleaseName, r.Name, ReleaseVersion, r.Version, ReleaseBoard, r.Board,
		ReleaseArch, r.Arch, ReleaseKernel, r.Kernel, ReleaseBuildEpoch, r.BuildEpoch)
	for _, kv := range r.More {
		b = fmt.Appendf(b, "%s=%s\n", kv.Key, kv.Value)
	}
	return b
}

// ParseRelease reads KEY=value lines (values may be double-quoted, as in
// os-release); other keys go to More, so older readers read newer files.
// A missing BUILD_EPOCH is 0; a malformed one is an error.
func ParseRelease(data []byte) (Release, error) {
	var r Release
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"`)
		switch k {
		case ReleaseName:
			r.Name = v
		case ReleaseVersion:
			r.Version = v
		case ReleaseBoard:
			r.Board = v
		case ReleaseArch:
			r.Arch = v
		case ReleaseKernel:
			r.Kernel = v
		case ReleaseBuildEpoch:
			e, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return r, fmt.Errorf("%s line %d: %s: %w", ReleaseFile, n, ReleaseBuildEpoch, err)
			}
			r.BuildEpoch = e
		default:
			r.More = append(r.More, KeyValue{k, v})
		}
	}
	if err := sc.Err(); err != nil {
		return r, fmt.Errorf("%s: %w", ReleaseFile, err)
	}
	return r, nil
}

package contract

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCmdlineFields(t *testing.T) {
	got := CmdlineFields("  a=1\tb=\"x y\"  \"c d\"=2 e \"\"\n")
	if diff := cmp.Diff([]string{"a=1", "b=x y", "c d=2", "e", ""}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

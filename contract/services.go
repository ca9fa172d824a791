package contract

// Service is one entry of ServicesFile (a YAML list): what stage 2
// supervises. The builder writes the list; the device reads it strictly
// (unknown keys are errors).
type Service struct {
	Name string   `yaml:"name"`
	Path string   `yaml:"path"`
	Args []string `yaml:"args,omitempty"`
	// Env entries are KEY=VALUE, added to PATH and HOME.
	Env []string `yaml:"env,omitempty"`
	// Restart is always (default), on-failure or once.
	Restart string `yaml:"restart,omitempty"`
	// ReadyFile, when set, is a file whose existence means ready;
	// ReadyExec a command whose success means ready.
	ReadyFile string   `yaml:"ready_file,omitempty"`
	ReadyExec []string `yaml:"ready_exec,omitempty"`
}

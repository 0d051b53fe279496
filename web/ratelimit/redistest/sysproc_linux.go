package redistest

import "syscall"

// sysProcAttr makes the kernel kill the server when the test binary dies
// without calling Stop (a test timeout panics past Run).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

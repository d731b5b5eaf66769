package migrate

import (
	"testing"
)

// supervisord's [program:x] keys: each maps to its gworkerd key, or is
// listed as unmapped with the reason.
func TestSupervisord(t *testing.T) {
	t.Parallel()
	runMapCases(t, Supervisord, svCases)
}

var svCases = []mapCase{
	{
		name: "the mapped keys",
		file: "w.conf",
		src: "[program:mailer]\ncommand=php /srv/app/worker.php --function=send_mail\nnumprocs=4\nprocess_name=%(program_name)s_%(process_num)02d\n" +
			"directory=/srv/app\nuser=www-data\nenvironment=APP_ENV=\"production\",MAIL_FROM=\"noreply@example.com\"\n" +
			"stopwaitsecs=60\nstartsecs=2\nstartretries=5\nautorestart=true\n",
		want: []string{
			"functions=[mailer]", `mailer.command=["php" "/srv/app/worker.php" "--function=send_mail"]`, "mailer.count=4",
			"mailer.dir=/srv/app", "mailer.user=www-data", "mailer.env=map[APP_ENV:production MAIL_FROM:noreply@example.com]",
			"mailer.stop_timeout=1m0s", "mailer.ready_after=2s", "mailer.fatal_after=6", "mailer.disabled=false",
		},
		unmapped: []string{"[program:mailer] process_name: names the children after the function"},
		notes:    []string{"servers: the programs connect to the Gearman servers on their own"},
	},
	{
		name: "supervisord's defaults written out",
		file: "w.conf", src: "[program:w]\ncommand=/usr/bin/worker\n",
		want:  []string{"w.count=1", "w.fatal_after=4", "w.stop_timeout=10s", "w.ready_after=0s", "w.dir=.", "w.user="},
		notes: []string{"[program:w] autorestart: did not restart a child that exited with an expected status (exitcodes 0 (0,2 before supervisord 4.0))"},
	},
	{
		name: "expansions",
		file: "w.conf",
		src: "[group:pool]\nprograms=a\n\n[program:a]\ncommand=%(here)s/bin/%(program_name)s --group=%(group_name)s --host=%(host_node_name)s --home=%(ENV_HOME)s --n=%(process_num)02d --of=%(numprocs)d 100%%\n" +
			"environment=WHO=\"%(program_name)s\"\ndirectory=%(ENV_HOME)s/run\n",
		env: map[string]string{"HOME": "/home/app"},
		want: []string{
			`a.command=["/etc/old/bin/a" "--group=pool" "--host=worker1" "--home=/home/app" "--n=00" "--of=1" "100%"]`,
			"a.env=map[WHO:a]", "a.dir=/home/app/run",
		},
		unmapped: []string{"[group:pool] programs: gworkerd has no groups"},
		notes: []string{
			"[program:a] command: %(host_node_name)s filled with this host's name \"worker1\"",
			"[program:a] command: %(ENV_HOME)s filled from the environment of this import",
		},
	},
	{
		name: "ENV_X from the program's and [supervisord]'s environment",
		file: "w.conf",
		src: "[program:a]\ncommand=/bin/a %(ENV_OWN)s %(ENV_GLOBAL)s\nenvironment=OWN=\"mine\"\n" +
			"[supervisord]\nenvironment=GLOBAL=\"everyone\",TZ=UTC\nlogfile=/var/log/supervisord.log\n",
		want: []string{`a.command=["/bin/a" "mine" "everyone"]`, "a.env=map[GLOBAL:everyone OWN:mine TZ:UTC]", "*.env=map[GLOBAL:everyone TZ:UTC]"},
		unmapped: []string{
			"[supervisord] logfile: supervisord's own setting",
		},
		notes: []string{"[supervisord] environment: mapped to defaults.env"},
	},
	{
		name: "what cannot be expanded here is left and reported",
		file: "w.conf",
		src:  "[program:a]\ncommand=/bin/a %(ENV_UNSET)s\nnumprocs=2\nprocess_name=a_%(process_num)d\nenvironment=N=\"%(process_num)d\"\n",
		want: []string{`a.command=["/bin/a" "%(ENV_UNSET)s"]`, "a.count=2", "a.env=map[N:%(process_num)d]"},
		unmapped: []string{
			"[program:a] command: %(ENV_UNSET)s left as is",
			"[program:a] process_name: names the children",
			"[program:a] environment: %(process_num)… left as is",
		},
	},
	{
		name: "a format supervisord refuses",
		file: "w.conf", src: "[program:a]\ncommand=/bin/a\ndirectory=%(nope)s\nenvironment=A=%(x\n",
		want:     []string{"a.dir=.", "a.env=map[]"},
		unmapped: []string{`[program:a] directory: supervisord refuses it: %(nope)s names "nope"`, "[program:a] environment: supervisord refuses it: badly formatted"},
	},
	{
		name: "command quoting",
		file: "w.conf",
		src:  "[program:a]\ncommand=/bin/sh -c \"echo 'a b' \\\"c\\\"\" 'x y' z\\ w \"\"\n",
		want: []string{`a.command=["/bin/sh" "-c" "echo 'a b' \"c\"" "x y" "z w" ""]`},
	},
	{
		name: "a command that cannot run",
		file: "w.conf", src: "[program:a]\ncommand=/bin/a \"unclosed\n[program:b]\ncommand=\"\"\n[program:c]\ncommand=/bin/c\n",
		want:     []string{"functions=[c]"},
		unmapped: []string{"[program:a] command: no closing quotation", "[program:b] command: empty command"},
	},
	{
		name: "environment quoting",
		file: "w.conf",
		src:  "[program:a]\ncommand=/bin/a\nenvironment=A=\"x y\",B='z, w',C=1,D=/usr/local/bin:/usr/bin\n",
		want: []string{"a.env=map[A:x y B:z, w C:1 D:/usr/local/bin:/usr/bin]"},
	},
	{
		name: "an environment supervisord refuses",
		file: "w.conf", src: "[program:a]\ncommand=/bin/a\nenvironment=A=1,B\n",
		want:     []string{"a.env=map[]"},
		unmapped: []string{"[program:a] environment: supervisord refuses it: unexpected end of key/value pairs"},
	},
	{
		name:  "start and stop",
		file:  "w.conf",
		src:   "[program:a]\ncommand=/bin/a\nautostart=false\nstartsecs=0\nstartretries=0\nstopwaitsecs=0\nstopsignal=TERM\nstopasgroup=true\nkillasgroup=true\n",
		want:  []string{"a.disabled=true", "a.ready_after=0s", "a.fatal_after=1", "a.stop_timeout=0s"},
		notes: []string{"[program:a] autostart: mapped to disabled: true"},
	},
	{
		name: "restart and signals nothing maps",
		file: "w.conf",
		src:  "[program:a]\ncommand=/bin/a\nautorestart=false\nexitcodes=0,3\nstopsignal=QUIT\nkillasgroup=false\n[program:b]\ncommand=/bin/b\nautorestart=sometimes\n",
		unmapped: []string{
			"[program:a] autorestart: false: gworkerd always replaces a child that exits",
			"[program:a] exitcodes: whatever its exit status",
			"[program:a] stopsignal: not QUIT",
			"[program:a] killasgroup: signals the child's whole process group",
			`[program:b] autorestart: invalid 'autorestart' value "sometimes"`,
		},
	},
	{
		name: "logs and the rest",
		file: "w.conf",
		src: "[program:a]\ncommand=/bin/a\nstdout_logfile=/var/log/a.log\nstdout_logfile_maxbytes=50MB\nstderr_logfile=/var/log/a.err\n" +
			"redirect_stderr=true\npriority=10\numask=022\nserverurl=AUTO\nnumprocs_start=3\nfrobnicate=1\n",
		unmapped: []string{
			"[program:a] stdout_logfile: the function's log stream",
			"[program:a] stdout_logfile_maxbytes: the function's log stream",
			"[program:a] stderr_logfile: the function's log stream",
			"[program:a] redirect_stderr: standard error included",
			"[program:a] priority: in no order",
			"[program:a] umask: inherit gworkerd's",
			"[program:a] serverurl: no XML-RPC interface",
			"[program:a] numprocs_start: only numbers %(process_num)d",
			"[program:a] frobnicate: supervisord does not know this key",
		},
	},
	{
		name: "bad numbers",
		file: "w.conf", src: "[program:a]\ncommand=/bin/a\nnumprocs=two\nstartsecs=-1\nstartretries=x\nstopwaitsecs=1_0\n",
		want:     []string{"a.count=1", "a.ready_after=0s", "a.fatal_after=0", "a.stop_timeout=10s"},
		unmapped: []string{`[program:a] numprocs: not an integer "two"`, "[program:a] startsecs: negative", `[program:a] startretries: not an integer "x"`},
	},
	{
		name: "numprocs 0",
		file: "w.conf", src: "[program:a]\ncommand=/bin/a\nnumprocs=0\n",
		want: []string{"a.count=0"},
	},
	{
		name: "configparser: [DEFAULT], continuations, comments, case, merged sections",
		file: "w.conf",
		src: "[DEFAULT]\nstartsecs = 5\n\n[program:a]\nCommand = /bin/a\n  --flag ; a comment\n  x;y\n# a whole-line comment\nenvironment =\n  A=1,\n  B=2\n" +
			"[program:b]\ncommand: /bin/b\nstartsecs=7\n[program:a]\nnumprocs=3\n",
		want: []string{
			`a.command=["/bin/a" "--flag" "x;y"]`, "a.ready_after=5s", "a.count=3", "a.env=map[A:1 B:2]",
			`b.command=["/bin/b"]`, "b.ready_after=7s",
		},
		unmapped: []string{},
	},
	{
		name: "sections that are not programs",
		file: "w.conf",
		src: "[include]\nfiles=conf.d/*.conf\n[eventlistener:crash]\ncommand=/bin/crash\n[unix_http_server]\nfile=/run/s.sock\n" +
			"[rpcinterface:supervisor]\nx=1\n[fcgi-program:f]\ncommand=/bin/f\n[whatever]\n",
		want: []string{"functions=[]"},
		unmapped: []string{
			"[include] files: import each included file on its own",
			"[eventlistener:crash] command: no event listeners",
			"[unix_http_server] file: control interface",
			"[rpcinterface:supervisor] x: control interface",
			"[fcgi-program:f] command: FastCGI",
			"[whatever]: supervisord does not read this section",
		},
	},
}

func TestSupervisordErrors(t *testing.T) {
	t.Parallel()
	runErrCases(t, Supervisord, []errCase{
		{name: "no section", file: "w.conf", src: "; c\ncommand=/bin/a\n", line: 2, msg: "no section headers"},
		{name: "not key=value", file: "w.conf", src: "[program:a]\ncommand=/bin/a\njunk\n", line: 3, msg: "not a section header nor a key = value"},
		{name: "lines ended by CR", file: "w.conf", src: "[program:a]\rcommand=/bin/a\r\njunk\r", line: 3, msg: "not a section header"},
		{name: "empty key", file: "w.conf", src: "[program:a]\n=x\n", line: 2, msg: "empty key"},
		{name: "no command", file: "w.conf", src: "[program:a]\ncommand=/bin/a\n\n[program:b]\nnumprocs=2\n", line: 4, msg: "does not specify a command"},
		{name: "program name with a blank", file: "w.conf", src: "[program:a b]\ncommand=/bin/a\n", line: 1, msg: "invalid program name"},
		{name: "empty program name", file: "w.conf", src: "\n[program:]\ncommand=/bin/a\n", line: 2, msg: "invalid program name"},
	})
}

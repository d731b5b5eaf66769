package migrate

import (
	"testing"
)

// GearmanManager's keys, ini form: each maps to its gworkerd key, or is
// listed as unmapped with the reason.
func TestGearmanManagerINI(t *testing.T) {
	t.Parallel()
	runMapCases(t, GearmanManager, gmINICases)
}

// The same keys in the PHP form, and the PHP subset the parser reads.
func TestGearmanManagerPHP(t *testing.T) {
	t.Parallel()
	runMapCases(t, GearmanManager, gmPHPCases)
}

var gmINICases = []mapCase{
	{
		name: "defaults written out",
		file: "gm.ini", src: "[GearmanManager]\n",
		want: []string{
			"servers=[127.0.0.1:4730]", "worker_dirs=[./workers]", "stop_timeout=1m0s",
			"*.count=1", "*.max_lifetime=1h0m0s", "*.lifetime_splay=10m0s", "*.max_jobs=0", "*.timeout=0s", "*.user=", "*.stop_timeout=0s",
			"functions=[]",
		},
		notes: []string{`worker_dir: "./workers" is relative`},
	},
	{
		name: "host",
		file: "gm.ini", src: "[GearmanManager]\nhost = a, b:4731 ,[::1],::2,[::3]:7\nworker_dir=/w\n",
		want: []string{"servers=[a:4730 b:4731 [::1]:4730 [::2]:4730 [::3]:7]"},
	},
	{
		name: "host and worker_dir as ini arrays",
		file: "gm.ini", src: "[GearmanManager]\nhost[] = a\nhost[] = b:1\nworker_dir[] = /w1\nworker_dir[] = /w2\n",
		want: []string{"servers=[a:4730 b:1]", "worker_dirs=[/w1 /w2]"},
	},
	{
		name: "worker_dir list",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir = /srv/a, /srv/b,,\n",
		want: []string{"worker_dirs=[/srv/a /srv/b]"},
	},
	{
		name: "counts",
		file: "gm.ini",
		src: "[GearmanManager]\nworker_dir=/w\ncount = 4\ndedicated_count = 1\n" +
			"[More]\ncount = 8\n" +
			"[Fewer]\ncount = 2\n" +
			"[Only]\ndedicated_count = 2\ndedicated_only = 1\n" +
			"[Own]\ndedicated_count = 3\n" +
			"[Plain]\ntimeout = 30\n",
		want: []string{
			"*.count=5", "More.count=8", "Fewer.count=5", "Only.count=2", "Own.count=7", "Plain.count=5",
			"functions=[Fewer More Only Own Plain]",
		},
		notes: []string{"count: count=4", "Only.dedicated_only: it gets its dedicated_count, 2 children"},
	},
	{
		name: "counts without do-all processes",
		file: "gm.ini",
		src:  "[GearmanManager]\nworker_dir=/w\n[A]\ncount = 3\n[B]\ndedicated_count = 2\n[C]\ncount = 0\n",
		want: []string{"*.count=1", "A.count=3", "B.count=2", "C.count=1"},
	},
	{
		name: "global dedicated_count",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\ndedicated_count = 3\n",
		want: []string{"*.count=3"},
	},
	{
		name: "dedicated_only without dedicated_count",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\ncount=2\n[F]\ndedicated_only = 1\n",
		want:     []string{"F.count=2"},
		unmapped: []string{"F.dedicated_only: Invalid configuration for dedicated_count"},
	},
	{
		name: "lifetime, splay, runs, timeout",
		file: "gm.ini",
		src:  "[GearmanManager]\nworker_dir=/w\nmax_worker_lifetime = 600\nworker_restart_splay = 60\nmax_runs_per_worker = 100\ntimeout = 300\n",
		want: []string{"*.max_lifetime=10m0s", "*.lifetime_splay=1m0s", "*.max_jobs=100", "*.timeout=5m0s"},
	},
	{
		name: "values GearmanManager ignores keep its defaults",
		file: "gm.ini",
		src:  "[GearmanManager]\nworker_dir=/w\nmax_worker_lifetime = 0\nworker_restart_splay = -5\nmax_runs_per_worker = 0\ntimeout = 0\n",
		want: []string{"*.max_lifetime=1h0m0s", "*.lifetime_splay=10m0s", "*.max_jobs=0", "*.timeout=0s"},
		notes: []string{
			"max_worker_lifetime: ignores a value that is not positive",
			"worker_restart_splay: ignores a value that is not positive",
		},
	},
	{
		name: "negative max_runs_per_worker",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\nmax_runs_per_worker = -1\n",
		want:     []string{"*.max_jobs=0"},
		unmapped: []string{"max_runs_per_worker: exit after every job"},
	},
	{
		name: "not a number",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\ncount = many\ntimeout = 1.5\n",
		want:     []string{"*.count=1", "*.timeout=0s"},
		unmapped: []string{`count: want a whole number, got "many"`, `timeout: want a whole number, got "1.5"`},
	},
	{
		name: "a function's timeout overrides the global one, 0 included",
		file: "gm.ini",
		src:  "[GearmanManager]\nworker_dir=/w\ntimeout = 300\n[Long]\ntimeout = 900\n[None]\ntimeout = 0\n[Empty]\ntimeout = null\n",
		want: []string{
			"*.timeout=5m0s", "Long.timeout=15m0s", "None.timeout=0s", "Empty.timeout=0s",
			"stop_timeout=1m0s", "*.stop_timeout=0s", "Long.stop_timeout=0s",
		},
	},
	{
		name: "include and exclude",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\ninclude = A,B\nexclude = C\n",
		want: []string{"include=[A B]", "exclude=[C]"},
	},
	{
		name: "include and exclude trimmed",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\ninclude = A, B\n",
		want:  []string{"include=[A B]"},
		notes: []string{"include: GearmanManager compared them untrimmed"},
	},
	{
		name: "include * and empty lists",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\ninclude = *\nexclude =\n",
		want: []string{"include=[]", "exclude=[]"},
	},
	{
		name: "include as an array",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\ninclude[] = A\n",
		want:     []string{"include=[]"},
		unmapped: []string{"include: comma-separated string"},
	},
	{
		name: "user, pid_file, log_file",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\nuser = www-data\npid_file = /run/gm.pid\nlog_file = /var/log/gm.log\n",
		want:  []string{"*.user=www-data", "pid_file=/run/gm.pid", "log_file=/var/log/gm.log"},
		notes: []string{"user: gworkerd runs the children as it"},
	},
	{
		name: "log to syslog",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\nlog_file = syslog\n",
		want:     []string{"log_file="},
		unmapped: []string{"log_file: not to syslog"},
	},
	{
		name: "prefix is function_prefix",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\nprefix = Worker_\n",
		want: []string{"function_prefix=Worker_"},
	},
	{
		name: "no prefix",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\nprefix = 0\n",
		want: []string{"function_prefix="},
	},
	{
		name: "prefix as an array",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\nprefix[] = A_\n",
		want:     []string{"function_prefix="},
		unmapped: []string{"prefix: an array: GearmanManager wants a string"},
	},
	{
		name: "keys nothing maps",
		file: "gm.ini",
		src: "[GearmanManager]\nworker_dir=/w\nauto_update = 1\ndaemon = yes\nverbose = vv\nworker_initial_spawn_splay = 1000\n" +
			"graceful_shutdown_wait_time = 120\nfrobnicate = 1\ndedicated_only = 1\n",
		want: []string{"stop_timeout=1m0s"},
		unmapped: []string{
			"auto_update: run `gworkerd reload` after a deploy",
			"daemon: `gworkerd start` detaches",
			"verbose: no log level",
			"worker_initial_spawn_splay: no pause between the starts",
			"graceful_shutdown_wait_time: GearmanManager does not read this key",
			"frobnicate: GearmanManager does not read this key",
			"dedicated_only: only in a function's section",
		},
	},
	{
		name: "switches that are off",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\nauto_update = off\ndaemon = 0\nprefix =\n",
	},
	{
		name: "a function's section keys",
		file: "gm.ini",
		src:  "[GearmanManager]\nworker_dir=/w\n[F]\ncount = 2\npriority = 3\nmax_worker_lifetime = 5\nbogus = 1\n",
		want: []string{"F.count=2", "F.max_lifetime=1h0m0s"},
		unmapped: []string{
			"F.priority: nothing to order",
			"F.max_worker_lifetime: reads max_worker_lifetime only in [GearmanManager]",
			"F.bogus: does not read this key in a function's section",
		},
	},
	{
		name: "sections GearmanManager does not take",
		file: "gm.ini",
		src:  "stray = 1\n[GearmanManager]\nworker_dir=/w\n[gearmanmanager]\ncount = 9\n[Bad Name]\ncount = 2\n",
		want: []string{"functions=[]", "*.count=1"},
		unmapped: []string{
			"stray: a value outside any section",
			"gearmanmanager: only from a section named exactly GearmanManager",
			"Bad Name: not a valid function name",
		},
	},
	{
		name: "no [GearmanManager] section",
		file: "gm.ini", src: "[F]\ncount = 2\n",
		want:  []string{"F.count=2", "worker_dirs=[./workers]"},
		notes: []string{"GearmanManager: no [GearmanManager] section"},
	},
	{
		name: "a later section replaces an earlier one",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\n[F]\ncount = 2\ntimeout = 9\n[F]\ncount = 3\n",
		want: []string{"F.count=3", "F.timeout=0s"},
	},
	{
		name: "ini values",
		file: "gm.ini",
		src: "[GearmanManager]\n" +
			"worker_dir = \"/srv/my workers\" ; quoted, with a blank\n" +
			"pid_file = '/run/a;b.pid'\n" +
			"log_file = /var/log/\"gm\".log\n" +
			"user = \"multi\nline\"\n" +
			"host = ${GM_HOST}, \"${GM_PORTLESS}\"\n" +
			"   count   =   2   \n" +
			"; count = 9\n",
		env: map[string]string{"GM_HOST": "10.1.1.1:4731", "GM_PORTLESS": "10.1.1.2"},
		want: []string{
			"worker_dirs=[/srv/my workers]", "pid_file=/run/a;b.pid", "log_file=/var/log/gm.log",
			"*.user=multi\nline", "servers=[10.1.1.1:4731 10.1.1.2:4730]", "*.count=2",
		},
		notes: []string{`host: ${GM_HOST} filled from the environment of this import ("10.1.1.1:4731")`},
	},
	{
		name: "an unset ${NAME}",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir = /w\nlog_file = ${NOPE}\n",
		want:  []string{"log_file="},
		notes: []string{`log_file: ${NOPE} is not set`},
	},
	{
		name: "ini booleans",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\nauto_update = yes\ndaemon = \"no\"\n",
		unmapped: []string{
			"auto_update: gworkerd reload",
			"daemon: `gworkerd start` detaches", // "no" quoted is a non-empty string
		},
	},
	{
		name: "a line without =",
		file: "gm.ini", src: "[GearmanManager]\nworker_dir=/w\njunk\n",
		unmapped: []string{"junk: PHP ignores it"},
	},
	{
		name: "another extension is sniffed",
		file: "gm.cfg", src: "[GearmanManager]\nworker_dir=/w\ncount=2\n",
		want:  []string{"*.count=2"},
		notes: []string{"(file): read as an .ini file"},
	},
}

var gmPHPCases = []mapCase{
	{
		name: "array()",
		file: "gm.php",
		src: "<?php\n$gearman_config = array(\n  'GearmanManager' => array(\n    'host' => 'a,b:1',\n    'worker_dir' => '/w',\n" +
			"    'count' => 2, 'dedicated_count' => 1, 'timeout' => 60, 'max_runs_per_worker' => 10,\n" +
			"    'auto_update' => false, 'user' => 'nobody',\n  ),\n  'F' => array('count' => 5, 'timeout' => '0'),\n);\n",
		want: []string{
			"servers=[a:4730 b:1]", "worker_dirs=[/w]", "*.count=3", "*.timeout=1m0s", "*.max_jobs=10", "*.user=nobody",
			"F.count=5", "F.timeout=0s",
		},
	},
	{
		name: "short arrays, lists, true",
		file: "gm.php",
		src: "<?php\n$gearman_config = [\n  'GearmanManager' => [\n    'host' => ['a', 'b:2'],\n    'worker_dir' => ['/w1', '/w2',],\n    'auto_update' => true,\n  ],\n" +
			"  'F' => ['dedicated_count' => 2, 'dedicated_only' => true],\n];\n",
		want:     []string{"servers=[a:4730 b:2]", "worker_dirs=[/w1 /w2]", "F.count=2"},
		unmapped: []string{"auto_update: gworkerd reload"},
	},
	{
		name: "assignments by index, variables, __DIR__, dirname, concatenation",
		file: "gm.php",
		src: "<?php\ndeclare(strict_types=1);\n$base = dirname(__DIR__) . '/app';\n" +
			"$gearman_config['GearmanManager']['worker_dir'] = $base . \"/workers\";\n" +
			"$gearman_config['GearmanManager']['log_file'] = __FILE__ . '.log';\n" +
			"$gearman_config['GearmanManager']['count'] = 0x2;\n" +
			"$gearman_config['F']['count'] = 1_0;\n" +
			"# a comment\n// another\n/* and\n another */\n?>\nnot PHP\n",
		want: []string{"worker_dirs=[/etc/app/workers]", "log_file=/etc/old/gm.php.log", "*.count=2", "F.count=10"},
	},
	{
		name:     "null and nested arrays",
		file:     "gm.php",
		src:      "<?php\n$gearman_config = ['GearmanManager' => ['worker_dir' => '/w', 'timeout' => null, 'host' => [['a']], 'user' => ['x']], 'F' => ['timeout' => null]];\n",
		want:     []string{"*.timeout=0s", "F.timeout=0s", "servers=[127.0.0.1:4730]", "*.user="},
		unmapped: []string{"host: an array of arrays", "user: an array"},
	},
	{
		name: "escapes in strings",
		file: "gm.php",
		src:  "<?php\n$gearman_config = ['GearmanManager' => ['worker_dir' => \"/w\\x41\\101\\u{42}\\$\", 'pid_file' => '/p\\'q\\n']];\n",
		want: []string{`worker_dirs=[/wAAB$]`, `pid_file=/p'q\n`},
	},
	{
		name:     "a scalar entry",
		file:     "gm.php",
		src:      "<?php\n$gearman_config = ['GearmanManager' => ['worker_dir' => '/w'], 'stray' => 1];\n",
		unmapped: []string{"stray: a value outside any section"},
	},
	{
		name: "integer keys",
		file: "gm.php",
		src:  "<?php\n$gearman_config = ['GearmanManager' => ['worker_dir' => '/w'], '7' => ['count' => 2], 8 => ['count' => 3]];\n",
		want: []string{"7.count=2", "8.count=3"},
	},
}

func TestGearmanManagerErrors(t *testing.T) {
	t.Parallel()
	runErrCases(t, GearmanManager, []errCase{
		{name: "ini unterminated string", file: "a.ini", src: "[GearmanManager]\nx = 1\nhost = \"a\nb\n", line: 3, msg: "unterminated \" string"},
		{name: "ini lines ended by CR LF and CR", file: "a.ini", src: "[GearmanManager]\r\nx = 1\rhost = 'a\r\n", line: 3, msg: "unterminated ' string"},
		{name: "ini unterminated raw string", file: "a.ini", src: "[GearmanManager]\nhost = 'a\n", line: 2, msg: "unterminated ' string"},
		{name: "ini section", file: "a.ini", src: "\n[GearmanManager\nx=1\n", line: 2, msg: "expecting ]"},
		{name: "ini section indented with spaces", file: "a.ini", src: "[GearmanManager]\n  [F]\ncount = 1\n", line: 2, msg: "without ="},
		{name: "ini token in a line without =", file: "a.ini", src: "[GearmanManager]\n\njunk(x)\n", line: 3, msg: "without ="},
		{name: "ini reserved key", file: "a.ini", src: "[GearmanManager]\nyes = 1\n", line: 2, msg: "cannot be a key"},
		{name: "ini expression", file: "a.ini", src: "[GearmanManager]\n\ncount = 1 | 2\n", line: 3, msg: "expressions"},
		{name: "ini parenthesis", file: "a.ini", src: "[GearmanManager]\ncount = (1)\n", line: 2, msg: "unexpected"},
		{name: "ini key", file: "a.ini", src: "[GearmanManager]\nho$t = 1\n", line: 2, msg: "unexpected"},
		{name: "ini ${ without }", file: "a.ini", src: "[GearmanManager]\nhost = ${X\n", line: 2, msg: "${ without }"},
		{name: "php no $gearman_config", file: "a.php", src: "<?php\n$config = [];\n", msg: "no $gearman_config"},
		{name: "php not an array", file: "a.php", src: "<?php\n\n$gearman_config = 'x';\n", line: 3, msg: "not an array"},
		{name: "php return", file: "a.php", src: "<?php\nreturn [\n];\n", line: 2, msg: "ignores the value a config file returns"},
		{name: "php function call", file: "a.php", src: "<?php\n$gearman_config = [];\n\ninclude 'x.php';\n", line: 4, msg: "unsupported statement"},
		{name: "php call in a value", file: "a.php", src: "<?php\n$gearman_config = [\n  'GearmanManager' => ['host' => getenv('H')],\n];\n", line: 3, msg: "unsupported expression"},
		{name: "php interpolation", file: "a.php", src: "<?php\n$h = 'a';\n$gearman_config = [\"$h\" => []];\n", line: 3, msg: "variables inside"},
		{name: "php undefined variable", file: "a.php", src: "<?php\n$gearman_config = [$nope => []];\n", line: 2, msg: "not assigned"},
		{name: "php missing ;", file: "a.php", src: "<?php\n$gearman_config = []\n$x = 1;\n", line: 3, msg: `expecting ";"`},
		{name: "php unterminated array", file: "a.php", src: "<?php\n$gearman_config = [\n  'a' => 1,\n", line: 2, msg: "array: expecting"},
		{name: "php lines ended by CR", file: "a.php", src: "<?php\r$gearman_config = [];\r\r$x = 1.5;\r", line: 4, msg: "floating-point"},
		{name: "php float", file: "a.php", src: "<?php\n$gearman_config = ['a' => 1.5];\n", line: 2, msg: "floating-point"},
		{name: "php heredoc", file: "a.php", src: "<?php\n$gearman_config = <<<EOT\nx\nEOT;\n", line: 2, msg: "heredoc"},
		{name: "php unterminated comment", file: "a.php", src: "<?php\n\n/* x\n", line: 3, msg: "unterminated /*"},
		{name: "php deep nesting", file: "a.php", src: "<?php\n$gearman_config = " + repeat("[", 100) + repeat("]", 100) + ";\n", line: 2, msg: "nested deeper"},
		{name: "php index into a string", file: "a.php", src: "<?php\n$gearman_config = 'x';\n$gearman_config['a'] = 1;\n", line: 3, msg: "not an array"},
	})
}

func repeat(s string, n int) string {
	out := ""
	for i := 0; i < n; i++ {
		out += s
	}
	return out
}

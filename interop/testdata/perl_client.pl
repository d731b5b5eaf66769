#!/usr/bin/perl
# Perl Gearman::Client for the interop suite: runs one MODE and prints
# "key=value" lines.
# Usage: perl perl_client.pl HOST:PORT PREFIX MODE
use strict;
use warnings;
use Gearman::Client;

my ($server, $prefix, $mode) = @ARGV;
my $c = Gearman::Client->new(job_servers => [$server]);
if ($mode eq 'do_task') {
    my $r = $c->do_task("$prefix.upper", "hello perl");
    print "result=", (defined $r ? $$r : "undef"), "\n";
    my $f = $c->do_task("$prefix.fail", "x");
    print "fail=", (defined $f ? "defined" : "undef"), "\n";
} elsif ($mode eq 'do_task_die') {
    my $f = $c->do_task("$prefix.die", "x");
    print "die=", (defined $f ? "defined" : "undef"), "\n";
} elsif ($mode eq 'dispatch_background') {
    my $h = $c->dispatch_background("$prefix.nowork", "bg", { uniq => "perl-uniq" });
    print "handle=$h\n";
    my $st = $c->get_status($h);
    print "known=", ($st->known ? 1 : 0), "\n";
    print "running=", ($st->running ? 1 : 0), "\n";
    my $h2 = $c->dispatch_background("$prefix.nowork", "bg2", { uniq => "perl-uniq" });
    print "coalesced=", ($h2 eq $h ? 1 : 0), "\n";
    my $u = $c->get_status("$server//H:nohost:999999");
    print "unknown_known=", ($u->known ? 1 : 0), "\n";
} elsif ($mode eq 'taskset') {
    my $ts = $c->new_task_set;
    my %got;
    for my $i (1 .. 3) {
        $ts->add_task("$prefix.upper", "item$i", {
            on_complete => sub { $got{$i} = ${ $_[0] } },
            on_fail     => sub { $got{$i} = "FAILED" },
        });
    }
    $ts->add_task("$prefix.fail", "bad", {
        on_complete => sub { $got{bad} = "completed" },
        on_fail     => sub { $got{bad} = "failed" },
    });
    $ts->wait(timeout => 20);
    print "$_=$got{$_}\n" for sort keys %got;
} else {
    die "unknown mode $mode\n";
}

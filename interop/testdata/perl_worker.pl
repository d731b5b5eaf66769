#!/usr/bin/perl
# Perl Gearman::Worker for the interop suite.
# Usage: perl perl_worker.pl HOST:PORT PREFIX JOBS
# Registers PREFIX.upper, PREFIX.fail (returns undef: WORK_FAIL) and
# PREFIX.die (dies: WORK_EXCEPTION then WORK_FAIL), serves JOBS jobs, then
# exits.
use strict;
use warnings;
use Gearman::Worker;

my ($server, $prefix, $jobs) = @ARGV;
my $w = Gearman::Worker->new(job_servers => [$server]);
$w->register_function("$prefix.upper" => sub { uc $_[0]->arg });
$w->register_function("$prefix.fail" => sub { return undef });
$w->register_function("$prefix.die" => sub { die "failing on purpose\n" });
my $done = 0;
print STDERR "ready\n";
$w->work(
    on_complete => sub { $done++ },
    on_fail     => sub { $done++ },
    stop_if     => sub { $done >= $jobs },
) while $done < $jobs;

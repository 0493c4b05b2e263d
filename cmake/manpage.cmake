# Write bayeswatch(1) from the program's own --help text, so the manual and
# the usage message cannot drift apart.
# usage: cmake -DBIN=bayeswatch -DOUT=bayeswatch.1 -DVERSION=x.y.z -P manpage.cmake
execute_process(COMMAND ${BIN} help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${BIN} help failed: ${rc}")
endif()
# troff: a backslash is \e; a line may not start with . or '
string(REPLACE "\\" "\\e" help "${help}")
string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" help "${help}")
file(WRITE ${OUT} ".TH BAYESWATCH 1 \"\" \"bayeswatch ${VERSION}\" \"User Commands\"
.SH NAME
bayeswatch \\- calibrated Bayesian anomaly and threat scores for operational telemetry, as a Kafka stream processor
.SH SYNOPSIS
.B bayeswatch
.I command
.RI [ options ]
.SH DESCRIPTION
bayeswatch consumes metric events from Kafka as a consumer-group member,
scores each series with a robust particle filter, pools low-traffic
regions with hierarchical models, fuses weak signals of an entity into a
threat probability, and publishes the scores exactly once. The same
engine replays CSV files offline.
.SH USAGE
.nf
${help}.fi
.SH EXIT STATUS
0 success; 1 a fatal Kafka error (the reason is logged); 64 a usage
error; 66 a missing input; 74 an I/O error; 78 an invalid configuration
(every problem reported as FILE:LINE:COL).
.SH FILES
.TP
.I share/bayeswatch/bayeswatch.yaml
the reference configuration: every key with its default and meaning
.TP
.I share/bayeswatch/schemas/
the Avro schemas of the input and output records
.SH SEE ALSO
The README in share/doc/bayeswatch.
")

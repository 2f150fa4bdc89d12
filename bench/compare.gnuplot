# Delivered msgs/s against number of subscribers, one line per broker and
# transport. Called by bench/compare:
#   gnuplot -e "datafile='F'; boundfile='B'; outfile='O.png'; nseries=K; nbound=M" \
#       bench/compare.gnuplot
# datafile: a header row of quoted series names, then "N v1 v2 ..." rows
# ("-" where a run failed). boundfile: "N rate" points where the load
# generator was near 100% of a core, circled so they read as a bound.

set terminal pngcairo size 900,640 enhanced font "sans,11"
set output outfile
set title "QoS 0 fan-out 1 -> N, 64-byte payloads (same machine, same run)"
set xlabel "subscribers (N)"
set ylabel "delivered messages per second"
set logscale xy
set format y "%.0s%c"
set grid xtics ytics mxtics mytics lc rgb "#dddddd"
set key inside bottom center horizontal maxcols 2 Left reverse noenhanced width 1 box opaque samplen 3
set datafile missing "-"
set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05

# wsbroker solid, peers dashed; one colour per transport family.
set style line 1 lc rgb "#1f77b4" lw 2.5 pt 7 ps 1.2 dt 1
set style line 2 lc rgb "#ff7f0e" lw 2 pt 5 ps 1.1 dt 2
set style line 3 lc rgb "#2ca02c" lw 2 pt 9 ps 1.2 dt 2
set style line 4 lc rgb "#9467bd" lw 2.5 pt 7 ps 1.2 dt 1
set style line 5 lc rgb "#d62728" lw 2 pt 11 ps 1.2 dt 2
set style line 6 lc rgb "#17becf" lw 2.5 pt 7 ps 1.2 dt 1
set style line 7 lc rgb "#8c564b" lw 2 pt 13 ps 1.2 dt 2
set style line 8 lc rgb "#7f7f7f" lw 2 pt 6 ps 1.2 dt 2

if (nbound > 0) {
	plot for [i=2:nseries+1] datafile using 1:i with linespoints ls (i-1) \
		title columnheader(i), \
	     boundfile using 1:2 with points pt 6 ps 3 lc rgb "black" \
		title "load generator near 100% CPU: a bound"
} else {
	plot for [i=2:nseries+1] datafile using 1:i with linespoints ls (i-1) \
		title columnheader(i)
}

# Teardown shared by the benchmarks that start daemons (sourced; callers run with set +e).
# Needs PEER_PID/PEER_IN (a `peer-engines` coprocess, optional), BERTHD_PID and BERTH (the CLI
# array for that berthd).

# Closing its stdin tells peer-engines to remove its containers and stop the daemons.
stop_peer_engines() {
	if [[ -n ${PEER_PID:-} ]]; then
		eval "exec $PEER_IN>&-"
		wait "$PEER_PID" 2>/dev/null
	fi
}

# Removes berthd's containers (with their anonymous volumes) and stops it.
stop_berthd() {
	if [[ -n ${BERTHD_PID:-} ]]; then
		"${BERTH[@]}" ps -aq | xargs -r -n 20 "${BERTH[@]}" rm -f -v >/dev/null 2>&1
		kill -TERM "$BERTHD_PID"
		wait "$BERTHD_PID" 2>/dev/null
	fi
}

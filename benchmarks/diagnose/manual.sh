#!/bin/bash
# The manual way: the facts `ollama-fleet diagnose` reads, gathered as a person does, one
# command after the other (the connectivity runbook: ssh, curl, openssl). The benchmark runs
# it against the lab; its output is counted, not parsed.
#   LAB_SSH="ssh -i KEY -p PORT root@127.0.0.1" URL=https://localhost:PORT CA=ca.pem \
#   KEY=... CLOSED_PORT=PORT bash benchmarks/diagnose/manual.sh
set -u
on() { $LAB_SSH "$@" 2>&1; echo "--- rc $?"; }
here() { "$@" 2>&1; echo "--- rc $?"; }

on cat /etc/os-release
on uname -a
on id -u
for unit in ollama caddy ollama-fleet-gateway ollama-fleet-monitor ollama-fleet-firewall; do
  on systemctl status "$unit" --no-pager
  on journalctl -u "$unit" -n 60 --no-pager
done
on systemctl cat ollama
on ss -ltnp
on nft list ruleset
on cat /opt/ollama/RELEASE
on curl -sS -m 5 http://127.0.0.1:11434/api/version
on curl -sS -m 5 http://127.0.0.1:11434/api/tags
on curl -sS -m 5 http://127.0.0.1:11434/api/ps
on ls -ld /usr/share/ollama/.ollama/models
on df -h /usr/share/ollama/.ollama/models
on df -i /usr/share/ollama/.ollama/models
on nvidia-smi
on lsmod
on modinfo -n nvidia
on lspci
on caddy validate --config /etc/caddy/Caddyfile --adapter caddyfile
on ls -R /var/lib/caddy/.local/share/caddy/certificates
on date +%s
here date +%s
on timedatectl
on getent ahosts localhost
here getent ahosts localhost
auth=(-H "Authorization: Bearer $KEY")
here curl -sS -m 10 --cacert "$CA" -o /dev/null -w '%{http_code} %{time_connect} %{time_starttransfer}\n' "$URL/"
here curl -sS -m 10 --cacert "$CA" "${auth[@]}" "$URL/api/version"
here curl -sS -m 10 --cacert "$CA" "${auth[@]}" "$URL/api/tags"
here curl -sS -m 30 --cacert "$CA" "${auth[@]}" "$URL/api/chat" \
  -d '{"model":"llama3.2:1b","messages":[{"role":"user","content":"hi"}],"stream":false}'
here curl -sS -m 10 --cacert "$CA" -o /dev/null -w '%{http_code}\n' "$URL/api/tags"
here curl -sS -m 10 --cacert "$CA" -o /dev/null -w '%{http_code}\n' -X POST "$URL/api/pull" -d '{}'
here curl -sS -m 3 "http://127.0.0.1:$CLOSED_PORT/api/version"
host=${URL#https://}; host=${host%%/*}
here sh -c "openssl s_client -connect 127.0.0.1:${host##*:} -servername ${host%%:*} -CAfile $CA </dev/null 2>/dev/null | openssl x509 -noout -subject -enddate"

"""One HTTPS request: `https.py METHOD URL CA [USER PASSWORD] [BODY]`.

Prints the status code (and nothing else), checking the server's
certificate against CA; basic authentication when USER is given (`-` for
none).
"""
import base64
import ssl
import sys
import urllib.error
import urllib.request

method, url, ca = sys.argv[1:4]
user = sys.argv[4] if len(sys.argv) > 4 else "-"
password = sys.argv[5] if len(sys.argv) > 5 else ""
body = sys.argv[6].encode() if len(sys.argv) > 6 else None
request = urllib.request.Request(url, data=body, method=method)
if body is not None:
    request.add_header("content-type", "application/json")
if user != "-":
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("authorization", "Basic " + token)
context = ssl.create_default_context(cafile=ca)
try:
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        print(response.status)
except urllib.error.HTTPError as e:
    print(e.code)

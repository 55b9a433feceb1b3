#!/usr/bin/python3
"""Seeds the demo bucket: nested directories, a few hundred small files, one 64 MiB file."""
import os
import random
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3

endpoint, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="S3RVER",
                  aws_secret_access_key="S3RVER", region_name="us-east-1")
existing = [b["Name"] for b in s3.list_buckets()["Buckets"]]
if bucket not in existing:
    s3.create_bucket(Bucket=bucket)
rnd = random.Random(2026)
files = {"README.txt": b"This bucket is served by a local s3rver and mounted by tierfs.\n"}
for year in (2025, 2026):
    for month in range(1, 13):
        for day in (1, 15):
            files[f"logs/{year}/{month:02d}/{day:02d}.log"] = (
                f"{year}-{month:02d}-{day:02d} all quiet\n" * rnd.randrange(10, 400)).encode()
for i in range(200):
    files[f"photos/album {i // 50}/img_{i:04d}.jpg"] = rnd.randbytes(rnd.randrange(4096, 65536))
files["datasets/empty.csv"] = b""
files["datasets/big.bin"] = os.urandom(64 * 1024 * 1024)
with ThreadPoolExecutor(16) as ex:
    list(ex.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), files.items()))
print(f"seeded {len(files)} objects into bucket '{bucket}'")

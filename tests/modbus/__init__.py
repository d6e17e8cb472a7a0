"""Tests of the Modbus input layer (pure Python, real pymodbus servers on 127.0.0.1)."""

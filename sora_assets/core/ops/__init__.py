"""Operations: alarms, SLO arithmetic and crash recovery."""
